/** Handlers' key-value store: the backend interface, its limits, and the SQLite and Redis backends. */
import { DcdnError } from '../../protocol/index.ts';
import { RedisKvStore, type RedisKvStoreOptions } from './redis-store.ts';
import { SqliteKvStore, type SqliteKvStoreOptions } from './sqlite-store.ts';
import type { KvStore } from './store.ts';

export type { KvEntry, KvListKey, KvListOptions, KvListResult, KvPutOptions, KvStore, KvStoreOptions } from './store.ts';
export { checkKey, checkList, checkMetadata, expirationOf, KV_LIMITS, type KvLimits } from './limits.ts';
export { SqliteKvStore, type SqliteKvStoreOptions } from './sqlite-store.ts';
export { RedisKvStore, type RedisKvStoreOptions } from './redis-store.ts';

/**
 * Opens the backend a spec names: `redis://…`, `rediss://…` or `redis+unix:///path?db=N` for
 * Redis (shared by ingress nodes), `sqlite:PATH` or a bare path for SQLite (one node).
 * Rejects with KV_STORE_UNAVAILABLE when the backend cannot be opened or reached.
 *
 * @example
 * ```ts
 * const kv = await openKvStore('redis://127.0.0.1:6379/0');
 * const local = await openKvStore('sqlite:/var/lib/dcdn/kv.db');
 * ```
 */
export async function openKvStore(spec: string, options: SqliteKvStoreOptions & RedisKvStoreOptions = {}): Promise<KvStore> {
  if (/^(rediss?|redis\+unix):\/\//i.test(spec)) return RedisKvStore.connect(spec, options);
  const path = spec.startsWith('sqlite:') ? spec.slice('sqlite:'.length) : spec;
  // Refuse other schemes rather than create a file named after them.
  if (path === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new DcdnError('KV_STORE_UNAVAILABLE', `not a KV store spec (sqlite:PATH, a path, or a redis:// URL): ${JSON.stringify(spec)}`);
  }
  return new SqliteKvStore(path, options);
}
