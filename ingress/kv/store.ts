/**
 * The storage behind handlers' KV bindings, as the ingress sees it.
 *
 * A backend stores values per namespace (one namespace per app and binding, named by the KV
 * service: handlers never name namespaces). Keys and options reach a backend already validated
 * by the service (kv/limits.ts); a backend enforces only what it alone can see while a value
 * streams in: its size.
 *
 * Values stream both ways: `put` consumes an async iterable of chunks and `get` hands back one,
 * so memory per operation stays bounded whatever the value size (up to KV_LIMITS.valueBytes).
 *
 * Guarantees every backend gives (the conformance suite in test/kv-store-suite.ts checks them):
 * - A put is atomic: a reader sees the whole old value or the whole new one, never a mix, and a
 *   put that fails (too large, source error, store error) leaves the old value in place.
 * - A reader that has started streaming a value keeps reading that value to its end even if it is
 *   overwritten or deleted meanwhile, for at least `readGraceMs` (default 60 s).
 * - Read-your-writes: once `put`/`delete` has resolved, every later `get`/`list` through the same
 *   backend (for Redis: through any backend on the same Redis) sees it.
 * - An entry whose expiration (Unix seconds) has passed is never returned by `get` or `list`, and
 *   its storage is reclaimed eventually.
 * - `list` returns keys in ascending order of their UTF-8 bytes, at most `limit`, resuming after
 *   `cursor`; `cursor` is opaque to callers.
 */
export interface KvStore {
  /** 'sqlite' or 'redis', for logs and health. */
  readonly kind: string;
  /** The entry, opened for reading, or null when absent or expired. */
  get(namespace: string, key: string): Promise<KvEntry | null>;
  /**
   * Stores `value` under `key`, replacing any entry. Rejects with DcdnError KV_VALUE_TOO_LARGE as
   * soon as more than `maxValueBytes` arrive (and stops pulling from `value`), leaving the old
   * entry untouched. Resolves once the new entry is durable and visible.
   */
  put(namespace: string, key: string, value: AsyncIterable<Uint8Array>, options: KvPutOptions): Promise<void>;
  /** Removes the entry; no error when there is none. */
  delete(namespace: string, key: string): Promise<void>;
  list(namespace: string, options: KvListOptions): Promise<KvListResult>;
  /** Number of live (unexpired) keys in a namespace, for `dcdn kv` and tests. */
  count(namespace: string): Promise<number>;
  /** Removes every entry of a namespace (when an app is deleted). */
  dropNamespace(namespace: string): Promise<void>;
  close(): Promise<void>;
}

export interface KvPutOptions {
  /** Unix time in seconds after which the entry is gone; undefined for never. */
  expiration?: number;
  /** Serialised JSON metadata (the service checked its size), or undefined. */
  metadata?: string;
  /** Most value bytes accepted. */
  maxValueBytes: number;
}

/** One stored entry, opened for reading. */
export interface KvEntry {
  /** Value size in bytes. */
  size: number;
  expiration?: number;
  metadata?: string;
  /**
   * The value's bytes, in chunks of at most 64 KiB. Pulled lazily; stopping early (break/return)
   * releases whatever the backend holds. Call at most once.
   */
  chunks(): AsyncIterable<Uint8Array>;
}

export interface KvListOptions {
  /** Only keys starting with this; '' for all. */
  prefix: string;
  /** Most keys returned, 1..1000. */
  limit: number;
  /** From a previous result's `cursor`, or undefined to start. */
  cursor?: string;
}

export interface KvListKey {
  name: string;
  expiration?: number;
  metadata?: string;
}

export interface KvListResult {
  keys: KvListKey[];
  /** True when no key after the last one returned matches. */
  listComplete: boolean;
  /** Resumes after the last key returned; set when listComplete is false. */
  cursor?: string;
}

/** Options common to backends. */
export interface KvStoreOptions {
  /** How long a reader may keep streaming a value after it was replaced. Default 60 000 ms. */
  readGraceMs?: number;
  /** The clock, in ms since the epoch (tests move it to check expiry). Default Date.now. */
  now?: () => number;
}
