/**
 * KV's `cacheTtl` (docs/kv.md): a get with `cacheTtl: N` may be answered for N seconds from a
 * copy this sandbox kept of an earlier read, as Workers answers from its edge's copy. The copies
 * are the tab's own (one cache per app sandbox), small and bounded: values up to
 * {@link READ_CACHE_LIMITS.valueBytes}, at most `entries` of them and `bytes` in all, the least
 * recently used dropped first. A put or delete from this sandbox drops its key's copy; writes
 * from elsewhere are seen once the copy expires (KV's own consistency model, eventually).
 */
export const READ_CACHE_LIMITS = { entries: 1024, bytes: 4 * 1024 * 1024, valueBytes: 64 * 1024 };

/** Workers' shortest cacheTtl. */
export const MIN_CACHE_TTL_SECONDS = 30;

interface Copy {
  value: Uint8Array | null;
  metadata: string | undefined;
  expires: number;
}

export class KvReadCache {
  readonly #copies = new Map<string, Copy>();
  #bytes = 0;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get size(): number {
    return this.#copies.size;
  }

  /** The copy of `binding`/`key`, if one is still within its cacheTtl. */
  get(binding: string, key: string): Copy | undefined {
    const id = `${binding}\n${key}`;
    const copy = this.#copies.get(id);
    if (!copy) return undefined;
    if (copy.expires <= this.#now()) {
      this.#drop(id, copy);
      return undefined;
    }
    this.#copies.delete(id);
    this.#copies.set(id, copy);
    return copy;
  }

  /** Keeps a read (null: the key did not exist) for `ttlSeconds`, if it is small enough. */
  set(binding: string, key: string, value: Uint8Array | null, metadata: string | undefined, ttlSeconds: number): void {
    const size = (value?.byteLength ?? 0) + key.length + (metadata?.length ?? 0);
    if (size > READ_CACHE_LIMITS.valueBytes) return;
    const id = `${binding}\n${key}`;
    this.delete(binding, key);
    this.#copies.set(id, { value, metadata, expires: this.#now() + ttlSeconds * 1000 });
    this.#bytes += size;
    for (const [oldId, old] of this.#copies) {
      if (this.#copies.size <= READ_CACHE_LIMITS.entries && this.#bytes <= READ_CACHE_LIMITS.bytes) break;
      this.#drop(oldId, old);
    }
  }

  /** Forgets `binding`/`key` (this sandbox wrote or deleted it). */
  delete(binding: string, key: string): void {
    const id = `${binding}\n${key}`;
    const copy = this.#copies.get(id);
    if (copy) this.#drop(id, copy);
  }

  #drop(id: string, copy: Copy): void {
    this.#copies.delete(id);
    this.#bytes -= (copy.value?.byteLength ?? 0) + id.length - id.indexOf('\n') - 1 + (copy.metadata?.length ?? 0);
  }
}
