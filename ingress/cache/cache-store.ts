/**
 * The ingress cache's memory: stored responses in LRU order, bounded by bytes. A response being
 * copied in (a fill) reserves its bytes as they arrive, so what is held at any moment, stored
 * and in flight together, stays under `maxBytes`: to make room the least recently used stored
 * responses are evicted, and a fill that still does not fit is abandoned (never buffered whole).
 */
import type CachePolicy from 'http-cache-semantics';

/** One stored response: its policy (RFC 9111 rules, http-cache-semantics) and its body in chunks. */
export interface CacheEntry {
  /** The app whose handler made it. */
  readonly app: string;
  /** The URL's path and query (what `dcdn cache purge --prefix` matches). */
  readonly path: string;
  /** `app`, method and URL: the key before Vary. */
  readonly primary: string;
  /** `primary` and the values of the request headers the response varies on. */
  readonly key: string;
  policy: CachePolicy;
  status: number;
  /** Response headers as sent to clients (no hop-by-hop, no dcdn-*, no Age), flat name/value pairs. */
  headers: string[];
  readonly chunks: Buffer[];
  readonly size: number;
  /** Bytes charged for it: body plus headers plus a fixed overhead. */
  readonly cost: number;
  /** When it stops being fresh, in ms since the epoch; the fast path of a hit compares against it. */
  freshUntil: number;
  /** Whether it may answer requests that carry Authorization (RFC 9111 §3.5: public, s-maxage, must-revalidate). */
  readonly authorizedOk: boolean;
  /** Whether it varies on request headers (a hit must then check them). */
  readonly varies: boolean;
  /** Whether its one background revalidation (stale-while-revalidate) is running. */
  revalidating: boolean;
}

/** Bytes charged per entry beyond its body and headers (the objects and map slots around them). */
export const ENTRY_OVERHEAD = 512;

export interface CacheStoreStats {
  entries: number;
  bytes: number;
  evictions: number;
}

export class CacheStore {
  readonly maxBytes: number;
  /** Insertion order is recency order: a hit moves its entry to the end. */
  readonly #entries = new Map<string, CacheEntry>();
  /** The keys stored under each primary key (its variants), so a URL's are found without a scan. */
  readonly #variants = new Map<string, Set<string>>();
  /** The request headers each primary key's responses vary on, lower case; [] when none. */
  readonly #vary = new Map<string, string[]>();
  #stored = 0;
  #reserved = 0;
  evictions = 0;
  /** Called for each entry evicted to make room (metrics). */
  onevict: ((entry: CacheEntry) => void) | null = null;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get stats(): CacheStoreStats {
    return { entries: this.#entries.size, bytes: this.#stored + this.#reserved, evictions: this.evictions };
  }

  /** Bytes held: stored entries plus fills in progress. Never above `maxBytes`. */
  get bytes(): number {
    return this.#stored + this.#reserved;
  }

  /** The header names `primary`'s responses vary on, if one was stored. */
  varyOf(primary: string): string[] | undefined {
    return this.#vary.get(primary);
  }

  /** The entry under `key`, made the most recently used. */
  get(key: string): CacheEntry | undefined {
    const entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** Reserves `n` bytes for a fill, evicting what it must; false when they cannot be had. */
  reserve(n: number): boolean {
    if (this.#stored + this.#reserved + n > this.maxBytes) this.#evict(this.#stored + this.#reserved + n - this.maxBytes);
    if (this.#stored + this.#reserved + n > this.maxBytes) return false;
    this.#reserved += n;
    return true;
  }

  /** Gives back bytes a fill reserved (it was abandoned, or became an entry). */
  release(n: number): void {
    this.#reserved = Math.max(0, this.#reserved - n);
  }

  /**
   * Stores an entry whose body bytes were reserved by its fill: the reservation becomes the
   * entry's. Replaces any entry under the same key. False when it does not fit.
   */
  insert(entry: CacheEntry, reservedBody: number, vary: string[]): boolean {
    this.release(reservedBody);
    const old = this.#entries.get(entry.key);
    if (old) this.#remove(old);
    if (entry.cost > this.maxBytes) return false;
    if (this.bytes + entry.cost > this.maxBytes) this.#evict(this.bytes + entry.cost - this.maxBytes);
    if (this.bytes + entry.cost > this.maxBytes) return false;
    this.#entries.set(entry.key, entry);
    this.#stored += entry.cost;
    let keys = this.#variants.get(entry.primary);
    if (!keys) this.#variants.set(entry.primary, (keys = new Set()));
    keys.add(entry.key);
    this.#vary.set(entry.primary, vary);
    return true;
  }

  /** Removes one entry (a failed revalidation, an unsafe method on its URL). */
  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) this.#remove(entry);
  }

  /** Removes every variant of `primary`. */
  deletePrimary(primary: string): number {
    let n = 0;
    for (const key of [...(this.#variants.get(primary) ?? [])]) {
      const entry = this.#entries.get(key);
      if (!entry) continue;
      this.#remove(entry);
      n++;
    }
    this.#vary.delete(primary);
    return n;
  }

  /** Removes `app`'s entries, or those whose path starts with `prefix`. Returns how many. */
  purge(app: string, prefix?: string): number {
    let n = 0;
    for (const entry of [...this.#entries.values()]) {
      if (entry.app !== app || (prefix !== undefined && !entry.path.startsWith(prefix))) continue;
      this.#remove(entry);
      n++;
    }
    for (const primary of [...this.#vary.keys()]) if (primary.startsWith(`${app} `)) this.#vary.delete(primary);
    return n;
  }

  #remove(entry: CacheEntry): void {
    this.#entries.delete(entry.key);
    this.#stored -= entry.cost;
    const keys = this.#variants.get(entry.primary);
    keys?.delete(entry.key);
    if (keys?.size === 0) this.#variants.delete(entry.primary);
  }

  #evict(needed: number): void {
    let freed = 0;
    for (const entry of this.#entries.values()) {
      if (freed >= needed) break;
      this.#remove(entry);
      freed += entry.cost;
      this.evictions++;
      this.onevict?.(entry);
    }
    // The Vary index only grows with distinct URLs: keep it within a count tied to the entries.
    if (this.#vary.size > 4 * this.#entries.size + 1024) {
      for (const primary of this.#vary.keys()) {
        this.#vary.delete(primary);
        if (this.#vary.size <= 2 * this.#entries.size + 1024) break;
      }
    }
  }
}
