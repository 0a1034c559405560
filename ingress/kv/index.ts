/** Handlers' key-value store: the backend interface, its limits, and the SQLite, Redis and Postgres backends. */
import { DcdnError } from '../../protocol/index.ts';
import { PgKvStore, type PgKvStoreOptions } from './pg-store.ts';
import { RedisKvStore, type RedisKvStoreOptions } from './redis-store.ts';
import { SqliteKvStore, type SqliteKvStoreOptions } from './sqlite-store.ts';
import type { KvStore } from './store.ts';

export type { KvEntry, KvListKey, KvListOptions, KvListResult, KvPutOptions, KvStore, KvStoreOptions } from './store.ts';
export { checkKey, checkList, checkMetadata, expirationOf, KV_LIMITS, type KvLimits } from './limits.ts';
export { SqliteKvStore, type SqliteKvStoreOptions } from './sqlite-store.ts';
export { RedisKvStore, type RedisKvStoreOptions } from './redis-store.ts';
export { PgKvStore, type PgKvStoreOptions } from './pg-store.ts';

/**
 * Opens the backend a spec names: `redis://…`, `rediss://…` or `redis+unix:///path?db=N` for
 * Redis and `postgres://…` or `postgresql://…` for Postgres (both shared by ingress nodes),
 * `sqlite:PATH` or a bare path for SQLite (one node).
 * Rejects with KV_STORE_UNAVAILABLE when the backend cannot be opened or reached.
 *
 * @example
 * ```ts
 * const kv = await openKvStore('redis://127.0.0.1:6379/0');
 * const shared = await openKvStore('postgres://dcdn@db.internal/dcdn');
 * const local = await openKvStore('sqlite:/var/lib/dcdn/kv.db');
 * ```
 */
export async function openKvStore(spec: string, options: SqliteKvStoreOptions & RedisKvStoreOptions & PgKvStoreOptions = {}): Promise<KvStore> {
  if (/^(rediss?|redis\+unix):\/\//i.test(spec)) return RedisKvStore.connect(spec, options);
  // Any postgres: spec, so a mistyped URL is refused rather than taken for a SQLite path.
  if (/^postgres(ql)?:/i.test(spec)) return PgKvStore.connect(spec, options);
  const path = spec.startsWith('sqlite:') ? spec.slice('sqlite:'.length) : spec;
  // Refuse other schemes rather than create a file named after them.
  if (path === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new DcdnError('KV_STORE_UNAVAILABLE', `not a KV store spec (sqlite:PATH, a path, a redis:// or a postgres:// URL): ${JSON.stringify(spec)}`);
  }
  return new SqliteKvStore(path, options);
}
