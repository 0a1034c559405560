/**
 * The SQL flags of `dcdn ingress` and `dcdn up` (docs/sql.md), and their mapping onto the
 * ingress's `sqlStore` and `sqlLimits`. Defaults come from a light leaf (ingress/sql/limits.ts)
 * so `dcdn --help` loads no database code.
 */
import { join } from 'node:path';
import { SQL_LIMITS, type SqlLimits } from '../ingress/sql/limits.ts';
import { intFlag, type FlagSpec } from './args.ts';

export const sqlFlags = {
  'sql-store': { type: 'string', help: "handlers' SQL store: pglite:DIR (embedded, one database per binding, this node only), postgres://USER@HOST/DB (shared by every ingress), or none (default: pglite:$DCDN_HOME/sql; env DCDN_SQL_STORE)" },
  'sql-statement-timeout': { type: 'string', default: String(SQL_LIMITS.statementTimeoutMs), help: 'ms a SQL statement may run before it is cancelled (SQL_TIMEOUT)' },
  'sql-max-rows': { type: 'string', default: String(SQL_LIMITS.maxResultRows), help: 'most rows one SQL call returns (SQL_RESULT_TOO_LARGE)' },
  'sql-max-bytes': { type: 'string', default: String(SQL_LIMITS.maxResultBytes), help: 'most bytes of result one SQL call returns (SQL_RESULT_TOO_LARGE)' },
  'sql-max-statements': { type: 'string', default: String(SQL_LIMITS.maxStatementsPerCall), help: 'most statements in one SQL call, a batch (SQL_TOO_MANY_STATEMENTS)' },
  'sql-max-concurrent': { type: 'string', default: String(SQL_LIMITS.maxConcurrentPerHost), help: 'SQL calls one host may have running at once (SQL_TOO_MANY_QUERIES)' },
} satisfies FlagSpec;

/** The store spec: the flag, else DCDN_SQL_STORE, else the embedded store under `home` ($DCDN_HOME, cli/state.ts). */
export function sqlStoreSpec(flag: unknown, home: string, env: NodeJS.ProcessEnv = process.env): string {
  return (flag as string | undefined) ?? env.DCDN_SQL_STORE ?? `pglite:${join(home, 'sql')}`;
}

/** `sqlStore` and `sqlLimits` for startIngress from the flags above. */
export function sqlOptionsFromFlags(v: Record<string, unknown>, home: string, env: NodeJS.ProcessEnv = process.env): { sqlStore: string; sqlLimits: Partial<SqlLimits> } {
  return {
    sqlStore: sqlStoreSpec(v['sql-store'], home, env),
    sqlLimits: {
      statementTimeoutMs: intFlag(v['sql-statement-timeout'] ?? SQL_LIMITS.statementTimeoutMs, 'sql-statement-timeout', 1),
      maxResultRows: intFlag(v['sql-max-rows'] ?? SQL_LIMITS.maxResultRows, 'sql-max-rows', 1),
      maxResultBytes: intFlag(v['sql-max-bytes'] ?? SQL_LIMITS.maxResultBytes, 'sql-max-bytes', 1),
      maxStatementsPerCall: intFlag(v['sql-max-statements'] ?? SQL_LIMITS.maxStatementsPerCall, 'sql-max-statements', 1),
      maxConcurrentPerHost: intFlag(v['sql-max-concurrent'] ?? SQL_LIMITS.maxConcurrentPerHost, 'sql-max-concurrent', 1),
    },
  };
}
