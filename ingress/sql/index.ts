/** Handlers' SQL bindings: the store interface, its limits, the embedded (PGlite) and Postgres backends. */
import { DcdnError } from '../../protocol/index.ts';
import { PgliteSqlStore, type PgliteSqlStoreOptions } from './pglite-store.ts';
import type { SqlStore } from './store.ts';

export type { SqlNamespace, SqlRunLimits, SqlStore } from './store.ts';
export { SQL_LIMITS, type SqlLimits } from './limits.ts';
export { PgliteSqlStore, type PgliteSqlStoreOptions } from './pglite-store.ts';
export { SqlService, type SqlCaller, type SqlServiceOptions, type SqlStats } from './service.ts';

/**
 * Opens the backend a spec names: `pglite:DIR` or a bare path for the embedded store (one PGlite
 * per binding under DIR, this node only), `postgres://…` / `postgresql://…` for a Postgres (or
 * CockroachDB) every ingress shares.
 *
 * @example
 * ```ts
 * const local = await openSqlStore(`pglite:${join(homedir(), '.dcdn', 'sql')}`);
 * const shared = await openSqlStore('postgres://dcdn@db.internal/dcdn');
 * ```
 */
export async function openSqlStore(spec: string, options: PgliteSqlStoreOptions = {}): Promise<SqlStore> {
  if (/^postgres(ql)?:/i.test(spec)) {
    const { PgSqlStore } = await import('./pg-store.ts');
    return PgSqlStore.connect(spec, options);
  }
  const dir = spec.startsWith('pglite:') ? spec.slice('pglite:'.length) : spec;
  if (dir === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(dir)) {
    throw new DcdnError('SQL_STORE_UNAVAILABLE', `not a SQL store spec (pglite:DIR, a path, or a postgres:// URL): ${JSON.stringify(spec)}`);
  }
  return new PgliteSqlStore(dir, options);
}
