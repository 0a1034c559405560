/**
 * What the hub and the HTTP handlers read synchronously from the control plane: the manifest,
 * the bans and the control version this node has applied. It is refreshed whenever the store's
 * `watch` reports a write (from any node), and keeps serving the last state it read when the
 * store is down, retrying until the store answers again. So a Postgres outage stops writes, not
 * serving.
 *
 * Code goes through an LRU of immutable versions (name and version → code), so hosts loading the
 * active version keep getting it from any node while the store is down, once one fetch filled it.
 * Secrets are not cached here: `/env` reads them from the store, so a host that heard a new
 * manifest from one node never gets old secrets from another.
 */
import type { AppManifestEntry } from './app-store.ts';
import type { Ban, BanKind } from './bans.ts';
import type { ControlStore } from './control-store.ts';

/** Bytes of code kept per node (versions are immutable, so a hit is never stale). */
export const DEFAULT_CODE_CACHE_BYTES = 64 * 1024 * 1024;
/** How long after a failed refresh (store down) the cache tries again. */
export const DEFAULT_REFRESH_RETRY_MS = 1000;

export interface ControlCacheOptions {
  /** Default {@link DEFAULT_CODE_CACHE_BYTES}. */
  codeCacheBytes?: number;
  /** Default {@link DEFAULT_REFRESH_RETRY_MS}. */
  refreshRetryMs?: number;
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** What one refresh changed. */
export interface ControlCacheChange {
  /** The control version now applied. */
  version: number;
  /** The manifest changed (deploy, rollback, delete, secrets). */
  apps: boolean;
  /** The bans changed. */
  bans: boolean;
}

export class ControlCache {
  /** Settles after the first read of the store (rejects if that read failed; retries go on). */
  readonly ready: Promise<void>;
  readonly #store: ControlStore;
  readonly #retryMs: number;
  readonly #log: NonNullable<ControlCacheOptions['log']>;
  readonly #code: CodeLru;
  readonly #listeners = new Set<(c: ControlCacheChange) => void>();
  readonly #waiters = new Set<{ version: number; done: (ok: boolean) => void }>();
  readonly #unwatch: () => void;
  #version = 0;
  #manifest: AppManifestEntry[] = [];
  #bans: Ban[] = [];
  #banIndex = new Map<string, string>();
  #chain: Promise<void> = Promise.resolve();
  #queued: Promise<void> | null = null;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #failing = false;
  #closed = false;

  /**
   * @example
   * ```ts
   * const cache = new ControlCache(store);
   * await cache.ready;
   * cache.onChange((c) => c.apps && hub.broadcastApps(cache.manifest()));
   * ```
   */
  constructor(store: ControlStore, options: ControlCacheOptions = {}) {
    this.#store = store;
    this.#retryMs = options.refreshRetryMs ?? DEFAULT_REFRESH_RETRY_MS;
    this.#log = options.log ?? (() => undefined);
    this.#code = new CodeLru(options.codeCacheBytes ?? DEFAULT_CODE_CACHE_BYTES);
    this.#unwatch = store.watch((c) => {
      if (c.version > this.#version) void this.#refreshInBackground();
    });
    this.ready = this.refresh();
    // A failed first read is the caller's to report; the retry keeps going meanwhile.
    this.ready.catch(() => this.#scheduleRetry());
  }

  /** The control version this node has applied (published as the node's `cv`). */
  get version(): number {
    return this.#version;
  }

  /** The active version of every app, as last read. */
  manifest(): AppManifestEntry[] {
    return this.#manifest;
  }

  /** The bans, as last read. */
  bans(): Ban[] {
    return this.#bans;
  }

  /** The reason of the first ban matching this host (its tab, address, then invite), or null. */
  banMatch(host: { hostId?: string | undefined; address?: string | undefined; sub?: string | undefined }): string | null {
    const check = (kind: BanKind, value: string | undefined) => (value ? (this.#banIndex.get(`${kind}\0${value}`) ?? null) : null);
    return check('host', host.hostId) ?? check('address', host.address) ?? check('invite', host.sub);
  }

  /** Calls back after every refresh that changed the manifest, the bans or the version. */
  onChange(listener: (c: ControlCacheChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The code of one version: from the LRU, else from the store (then kept).
   *
   * @throws {DcdnError} APP_STORE_UNAVAILABLE when it is not cached and the store is down.
   */
  code(name: string, version: number): Promise<{ code: string; sha256: string } | undefined> {
    return this.#code.get(name, version, () => this.#store.code(name, version));
  }

  /**
   * Reads the store now. Resolves once a read that began after this call has been applied, so
   * after a write of one's own `await cache.refresh()` shows it.
   */
  refresh(): Promise<void> {
    if (this.#queued) return this.#queued; // not begun yet: it will see what was written
    const run = this.#chain.then(() => {
      this.#queued = null;
      return this.#read();
    });
    this.#queued = run;
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Resolves true once this node applied `version`, false after `timeoutMs`. */
  waitForVersion(version: number, timeoutMs: number): Promise<boolean> {
    if (this.#version >= version) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        version,
        done: (ok: boolean) => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  close(): void {
    this.#closed = true;
    this.#unwatch();
    clearTimeout(this.#retry);
    for (const w of [...this.#waiters]) w.done(false);
    this.#listeners.clear();
  }

  async #read(): Promise<void> {
    if (this.#closed) return;
    // The version first: the data read after it is at least that new, so `version` never
    // claims more than what is applied.
    const version = await this.#store.version();
    const [manifest, bans] = await Promise.all([this.#store.manifest(), this.#store.bans()]);
    if (this.#closed) return;
    if (this.#failing) this.#log('info', 'control store answers again', { version });
    this.#failing = false;
    const apps = JSON.stringify(manifest) !== JSON.stringify(this.#manifest);
    const bansChanged = JSON.stringify(bans) !== JSON.stringify(this.#bans);
    const moved = version !== this.#version;
    if (apps) this.#code.forgetReplaced(this.#manifest, manifest);
    this.#manifest = manifest;
    this.#bans = bans;
    this.#banIndex = new Map(bans.map((b) => [`${b.kind}\0${b.value}`, b.reason]));
    this.#version = Math.max(this.#version, version);
    for (const w of [...this.#waiters]) if (this.#version >= w.version) w.done(true);
    if (!apps && !bansChanged && !moved) return;
    const change = { version: this.#version, apps, bans: bansChanged };
    for (const l of [...this.#listeners]) {
      try {
        l(change);
      } catch (err) {
        this.#log('warn', 'control cache listener failed', { error: (err as Error).message });
      }
    }
  }

  async #refreshInBackground(): Promise<void> {
    try {
      await this.refresh();
    } catch (err) {
      if (!this.#failing) this.#log('warn', 'control store unreachable; serving the last state read', { version: this.#version, error: (err as Error).message });
      this.#failing = true;
      this.#scheduleRetry();
    }
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#refreshInBackground();
    }, this.#retryMs);
    this.#retry.unref?.();
  }
}

/** Code of immutable versions, least recently used dropped first, bounded in bytes. */
class CodeLru {
  readonly #maxBytes: number;
  #bytes = 0;
  readonly #entries = new Map<string, { code: string; sha256: string; bytes: number }>();
  readonly #loading = new Map<string, Promise<{ code: string; sha256: string } | undefined>>();

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  async get(name: string, version: number, load: () => Promise<{ code: string; sha256: string } | undefined>): Promise<{ code: string; sha256: string } | undefined> {
    const key = `${name}\0${version}`;
    const hit = this.#entries.get(key);
    if (hit) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return { code: hit.code, sha256: hit.sha256 };
    }
    // Many hosts fetch a new version at once: one store read serves them all.
    let loading = this.#loading.get(key);
    if (!loading) {
      loading = load().finally(() => this.#loading.delete(key));
      this.#loading.set(key, loading);
      void loading.then((found) => found && this.#put(key, found), () => undefined);
    }
    return loading;
  }

  /**
   * Versions are immutable, but a deleted app's numbers start again at 1 on its next deploy.
   * An app that left the manifest, or whose active version did not go up (a rollback, or a
   * delete and redeploy between two refreshes), has its cached code dropped.
   */
  forgetReplaced(before: AppManifestEntry[], after: AppManifestEntry[]): void {
    const now = new Map(after.map((a) => [a.name, a.version]));
    for (const old of before) {
      const v = now.get(old.name);
      if (v !== undefined && v > old.version) continue;
      for (const [key, entry] of this.#entries) {
        if (!key.startsWith(`${old.name}\0`)) continue;
        this.#entries.delete(key);
        this.#bytes -= entry.bytes;
      }
    }
  }

  #put(key: string, found: { code: string; sha256: string }): void {
    const bytes = Buffer.byteLength(found.code);
    if (bytes > this.#maxBytes || this.#entries.has(key)) return;
    this.#entries.set(key, { ...found, bytes });
    this.#bytes += bytes;
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= e.bytes;
    }
  }
}
