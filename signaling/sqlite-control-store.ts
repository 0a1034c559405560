/**
 * The control store of one signaling process: today's SQLite file and schema (`AppStore` for
 * apps, versions, secrets and keys; `BanList` for bans, a table of the same file), behind the
 * async {@link ControlStore} interface that a cluster fills with Postgres (pg-control-store.ts).
 *
 * One process owns the file, so the change feed is in memory: every write through this store or
 * straight through its `AppStore` (the tests, `dcdn up`'s file watcher) bumps {@link version} and
 * calls `watch` listeners at once. A second process on the same file would not hear of them;
 * a cluster needs Postgres.
 */
import { createHash } from 'node:crypto';
import { parseAppConfig, type AppConfig } from '../protocol/index.ts';
import { AppStore, checkName, type AppManifestEntry, type AppSummary, type AppVersion } from './app-store.ts';
import { BanList, type Ban, type BanKind } from './bans.ts';
import type { ControlChange, ControlStore, CronRun, CronState } from './control-store.ts';

export class SqliteControlStore implements ControlStore {
  readonly kind = 'sqlite' as const;
  /** The wrapped app store (`dcdn up` reads and watches it directly). */
  readonly apps: AppStore;
  readonly banList: BanList;
  readonly #owned: boolean;
  #version = 0;
  readonly #listeners = new Set<(c: ControlChange) => void>();
  readonly #offApps: () => void;

  /**
   * Wraps an `AppStore` and `BanList`; {@link close} closes them only when `owned` (as
   * {@link SqliteControlStore.open} makes them), else the caller does.
   */
  constructor(parts: { apps: AppStore; bans: BanList; owned?: boolean }) {
    this.apps = parts.apps;
    this.banList = parts.bans;
    this.#owned = parts.owned === true;
    this.#offApps = this.apps.onChange(() => this.#changed('apps'));
  }

  /**
   * Opens the SQLite file at `path` (apps and bans in one file, as `dcdn signal --db` always
   * had; `:memory:` for tests).
   *
   * @example
   * ```ts
   * const store = SqliteControlStore.open(join(stateDir(), 'apps.db'));
   * const cache = new ControlCache(store);
   * ```
   */
  static open(path: string): SqliteControlStore {
    return new SqliteControlStore({ apps: new AppStore(path), bans: new BanList(path), owned: true });
  }

  async deploy(name: string, code: string, message: string, config: Partial<AppConfig>): Promise<AppVersion> {
    return this.apps.deploy(name, code, message, config);
  }

  async deployIfChanged(name: string, code: string, message: string, config: Partial<AppConfig>): Promise<AppVersion | null> {
    // One process, synchronous SQLite: nothing can deploy between this check and the deploy.
    checkName(name);
    const active = this.apps.manifest().find((a) => a.name === name);
    if (active && sameDeployment(this.apps.code(name, active.version)?.sha256, active.config, code, config)) return null;
    return this.apps.deploy(name, code, message, config);
  }

  async rollback(name: string, to?: number): Promise<AppVersion> {
    return this.apps.rollback(name, to);
  }

  async delete(name: string): Promise<void> {
    this.apps.delete(name);
  }

  async putSecret(app: string, name: string, value: string): Promise<void> {
    this.apps.putSecret(app, name, value);
  }

  async deleteSecret(app: string, name: string): Promise<boolean> {
    return this.apps.deleteSecret(app, name);
  }

  async list(): Promise<AppSummary[]> {
    return this.apps.list();
  }

  async manifest(): Promise<AppManifestEntry[]> {
    return this.apps.manifest();
  }

  async code(name: string, version: number): Promise<{ code: string; sha256: string } | undefined> {
    return this.apps.code(name, version);
  }

  async secrets(name: string): Promise<Record<string, string>> {
    return this.apps.secrets(name);
  }

  async addBan(kind: BanKind, value: string, reason: string): Promise<Ban> {
    const ban = this.banList.add(kind, value, reason);
    this.#changed('bans');
    return ban;
  }

  async removeBan(id: string): Promise<boolean> {
    const gone = this.banList.remove(id);
    if (gone) this.#changed('bans');
    return gone;
  }

  async bans(): Promise<Ban[]> {
    return this.banList.list();
  }

  async meta(key: 'deployment_key' | 'peer_key'): Promise<string> {
    return this.apps.meta(key);
  }

  async claimCronTick(app: string, tick: number): Promise<boolean> {
    return this.apps.cron.claim(app, tick);
  }

  async recordCronRun(app: string, run: CronRun): Promise<void> {
    this.apps.cron.record(app, run);
  }

  async cronStates(): Promise<CronState[]> {
    return this.apps.cron.states();
  }

  /** Counts this process's writes (the file has one writer, so no counter is stored). */
  async version(): Promise<number> {
    return this.#version;
  }

  watch(onChange: (c: ControlChange) => void): () => void {
    this.#listeners.add(onChange);
    return () => this.#listeners.delete(onChange);
  }

  async close(): Promise<void> {
    this.#offApps();
    this.#listeners.clear();
    if (!this.#owned) return;
    this.apps.close();
    this.banList.close();
  }

  #changed(what: ControlChange['what']): void {
    const change = { version: ++this.#version, what };
    for (const l of [...this.#listeners]) l(change);
  }
}

/** Whether the active version (its code's hash and config) is already `code` with `config`. */
export function sameDeployment(activeSha256: string | undefined, activeConfig: AppConfig, code: string, config: Partial<AppConfig>): boolean {
  return activeSha256 === createHash('sha256').update(code).digest('hex') && JSON.stringify(activeConfig) === JSON.stringify(parseAppConfig(config));
}
