import type { AppConfig, AppRef as WireAppRef } from '../protocol/index.ts';
import type { AppRuntime, AppSource, RuntimeFactory } from './app-runtime.ts';
import { hostError } from './app-runtime.ts';

/**
 * An app's active version, as signaling announces it (protocol's `AppRef`), with only the part
 * of its config a tab needs; the config is optional so a page can also serve a bare app.
 */
export type AppRef = Omit<WireAppRef, 'config'> & { config?: Pick<AppConfig, 'kv'> & Partial<Pick<AppConfig, 'vars' | 'sql'>> };

export interface AppRegistryOptions {
  /** Fetches a version's code and env (from the control plane). */
  loadSource(ref: AppRef): Promise<AppSource>;
  createRuntime: RuntimeFactory;
  /** How long a request waits for its app to be announced or finish loading. Default 15000 ms. */
  loadTimeoutMs?: number;
  log?: (line: string) => void;
  /** Called after a version starts or stops loading, serving or failing. */
  onchange?: () => void;
}

interface Slot {
  runtime: AppRuntime;
  sha256: string;
  inFlight: number;
  retired: boolean;
}

interface AppEntry {
  ref: AppRef;
  active: Slot | null;
  /** The version being loaded, if any. */
  loading: Promise<void> | null;
  error: string | null;
}

/**
 * The apps a host serves, one active version each, swapped live.
 *
 * When signaling announces a new version, it is loaded beside the running one; once ready it
 * takes new requests, and the old one finishes the requests it already had, then closes. A
 * request for an app that is still loading (a first deploy) waits for it instead of failing.
 */
export class AppRegistry {
  readonly #opts: Required<Omit<AppRegistryOptions, 'log' | 'onchange'>> & { log: (line: string) => void; onchange?: () => void };
  readonly #apps = new Map<string, AppEntry>();
  #announced = false;
  #waiters = new Set<() => void>();

  constructor(options: AppRegistryOptions) {
    this.#opts = { loadTimeoutMs: 15_000, log: () => {}, ...options };
  }

  /** Applies a manifest: loads new versions, retires deleted apps. */
  update(manifest: readonly AppRef[]): void {
    this.#announced = true;
    const names = new Set(manifest.map((a) => a.name));
    for (const [name, entry] of this.#apps) {
      if (names.has(name)) continue;
      this.#apps.delete(name);
      if (entry.active) this.#retire(entry.active);
      this.#opts.log(`${name}: deleted`);
    }
    for (const ref of manifest) {
      const entry = this.#apps.get(ref.name);
      if (entry && entry.ref.sha256 === ref.sha256 && entry.ref.version === ref.version) continue;
      if (entry) entry.ref = ref;
      else this.#apps.set(ref.name, { ref, active: null, loading: null, error: null });
      this.#load(this.#apps.get(ref.name)!, ref);
    }
    this.#wake();
  }

  /**
   * Unloads every app (the host is leaving): running versions finish the requests they have,
   * then close; loads in progress are dropped when they finish. Later requests fail at once.
   */
  close(): void {
    for (const entry of this.#apps.values()) if (entry.active) this.#retire(entry.active);
    this.#apps.clear();
    this.#announced = true;
    this.#wake();
  }

  /** Per app, the announced version and how it is doing: what signaling is told. */
  report(): Array<{ name: string; version: number; state: 'serving' | 'loading' | 'failed'; sha256: string }> {
    const out: Array<{ name: string; version: number; state: 'serving' | 'loading' | 'failed'; sha256: string }> = [];
    for (const e of this.#apps.values()) {
      const current = e.active !== null && e.active.sha256 === e.ref.sha256;
      // The deployment id tells a reload for new secrets (same version) from the old one.
      out.push({ name: e.ref.name, version: e.ref.version, state: current ? 'serving' : e.error && !e.loading ? 'failed' : 'loading', sha256: e.ref.sha256 });
      // The version still serving while a newer one loads or failed to.
      if (e.active && !current) out.push({ name: e.ref.name, version: e.active.runtime.version, state: 'serving', sha256: e.active.sha256 });
    }
    return out;
  }

  /** What is loaded, for the status page and health. */
  status(): Array<{ app: string; version: number | null; loading: boolean; error: string | null }> {
    return [...this.#apps.values()].map((e) => ({
      app: e.ref.name,
      version: e.active?.runtime.version ?? null,
      loading: e.loading !== null,
      error: e.error,
    }));
  }

  /**
   * The runtime for a request to `name` ('' means `default`), with a `release` to call when the
   * response is done. Waits for an announcement or a load in progress; rejects with
   * HOST_NO_APP when the app does not exist or fails to load.
   */
  async acquire(name: string): Promise<{ runtime: AppRuntime; release: () => void }> {
    const app = name || 'default';
    const deadline = Date.now() + this.#opts.loadTimeoutMs;
    for (;;) {
      const entry = this.#apps.get(app);
      const slot = entry?.active;
      if (slot && !slot.retired) {
        slot.inFlight++;
        let released = false;
        return {
          runtime: slot.runtime,
          release: () => {
            if (released) return;
            released = true;
            slot.inFlight--;
            if (slot.retired && slot.inFlight === 0) this.#close(slot);
          },
        };
      }
      if (entry?.error && !entry.loading) throw hostError('HOST_NO_APP', `${app} failed to load: ${entry.error}`);
      if (this.#announced && !entry) throw hostError('HOST_NO_APP', `no app named ${app} is deployed`);
      const left = deadline - Date.now();
      if (left <= 0) throw hostError('HOST_NO_APP', `${app} did not load within ${this.#opts.loadTimeoutMs} ms`);
      await this.#changed(left);
    }
  }

  #load(entry: AppEntry, ref: AppRef): void {
    const started = performance.now();
    let loading: Promise<void> | null = null;
    loading = (async () => {
      try {
        const source = await this.#opts.loadSource(ref);
        const runtime = await this.#opts.createRuntime(source);
        if (entry.ref.sha256 !== ref.sha256 || this.#apps.get(ref.name) !== entry) {
          runtime.close(); // superseded while loading
          return;
        }
        const previous = entry.active;
        entry.active = { runtime, sha256: ref.sha256, inFlight: 0, retired: false };
        entry.error = null;
        if (previous) this.#retire(previous);
        this.#opts.log(`${ref.name}@${ref.version} serving (loaded in ${Math.round(performance.now() - started)} ms)${previous ? `; @${previous.runtime.version} draining` : ''}`);
      } catch (err) {
        entry.error = (err as Error).message;
        this.#opts.log(`${ref.name}@${ref.version} failed to load: ${entry.error}${entry.active ? `; @${entry.active.runtime.version} keeps serving` : ''}`);
      } finally {
        if (entry.loading === loading) entry.loading = null;
        this.#wake();
      }
    })();
    entry.loading = loading;
  }

  #retire(slot: Slot): void {
    slot.retired = true;
    if (slot.inFlight === 0) this.#close(slot);
  }

  #close(slot: Slot): void {
    void slot.runtime.drain().finally(() => slot.runtime.close());
  }

  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
    this.#opts.onchange?.();
  }
}
