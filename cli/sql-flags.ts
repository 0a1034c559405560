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

/** `dcdn sql`. */
export const sqlCommandFlags = {
  binding: { type: 'string', short: 'b', help: 'the SQL binding (env.BINDING) of that app' },
  json: { type: 'boolean', default: false, help: 'print rows as JSON (one object per row) instead of a table' },
  ingress: { type: 'string', help: 'the ingress that runs the SQL (default: DCDN_INGRESS, or the local dcdn up\'s)' },
  token: { type: 'string', help: 'operator token (else DCDN_TOKEN, a token minted from DCDN_SECRET, or the local state)' },
  store: { type: 'string', help: 'open this store directly instead of asking an ingress: postgres://… (or pglite:DIR of a stopped ingress)' },
} satisfies FlagSpec;

export const sqlUsage = 'dcdn sql APP --binding DB "SQL" | dcdn sql migrate|export|import APP --binding DB [DIR|FILE] [--json] [--ingress URL] [--store SPEC]';
export const sqlDescription =
  "Runs SQL in an app's database, the one its handler sees as env.BINDING (docs/sql.md).\n" +
  '  dcdn sql APP -b DB "SELECT …"     one statement; rows as a table (--json: JSON)\n' +
  '  dcdn sql migrate APP -b DB DIR    applies DIR\'s numbered .sql files not applied yet, in order,\n' +
  '                                    each in one transaction, recorded in dcdn_migrations\n' +
  "  dcdn sql export APP -b DB         the binding's tables' rows as JSON lines on stdout\n" +
  '  dcdn sql import APP -b DB FILE    inserts the rows of such a file (the tables must exist)';
