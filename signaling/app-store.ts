import Database from 'better-sqlite3';
import { preparePrivateDbFile } from './private-files.ts';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { DcdnError } from '../protocol/index.ts';
import { BINDING_NAME, parseAppConfig, type AppConfig } from '../protocol/index.ts';
import { SqliteCronTable } from './sqlite-cron.ts';
import { checkCrons } from './cron-schedule.ts';

/** App names: DNS labels, so `NAME.base-domain` routes to them. */
export const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export { BINDING_NAME };
/** Largest bundle accepted (Workers' paid limit is 10 MiB compressed; ours is uncompressed). */
export const MAX_BUNDLE_BYTES = 10 * 1024 * 1024;
export const MAX_SECRET_BYTES = 5 * 1024;

/** One stored version of an app. */
export interface AppVersion {
  app: string;
  version: number;
  sha256: string;
  size: number;
  createdAt: string;
  message: string;
  config: AppConfig;
}

/** An app as listed to operators (never with code or secret values). */
export interface AppSummary {
  name: string;
  activeVersion: number;
  versions: AppVersion[];
  secrets: string[];
  updatedAt: string;
}

/** What a host needs to run an app's active version. */
export interface AppManifestEntry {
  name: string;
  version: number;
  /**
   * Identifies the deployment: the code's hash, mixed with the config's when it is not the
   * default and with the secrets' when it has any.
   */
  sha256: string;
  config: AppConfig;
}

/**
 * Apps, every version of their code, and their secrets, in SQLite (durable across restarts;
 * `:memory:` for tests). Versions are never rewritten: a deploy adds one and makes it active,
 * a rollback only moves the active pointer.
 */
export class AppStore {
  readonly #db: Database.Database;
  readonly #deploymentKey: string;
  /** The apps' cron state (last tick claimed, last run), in this file (sqlite-cron.ts). */
  readonly cron: SqliteCronTable;
  #listeners = new Set<() => void>();

  constructor(path: string) {
    // Secrets and tokens' subjects live here: owner-only, -wal and -shm included.
    preparePrivateDbFile(path);
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    // A deleted or replaced secret is overwritten with zeros rather than left in a free page.
    this.#db.pragma('secure_delete = ON');
    this.#db.pragma('foreign_keys = ON');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS apps (
        name TEXT PRIMARY KEY,
        active_version INTEGER NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS versions (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        code TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        config TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (app, version)
      );
      CREATE TABLE IF NOT EXISTS secrets (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, name)
      );
    `);
    // A key of this store's own for the deployment ids: they mix in the secrets' values, and
    // go to every host (volunteers too), so a plain hash would let a weak secret be guessed.
    this.#db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    this.#db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('deployment_key', randomBytes(32).toString('hex'));
    this.#deploymentKey = (this.#db.prepare('SELECT value FROM meta WHERE key = ?').get('deployment_key') as { value: string }).value;
    // Databases from before deploy options: add the column (every old version gets defaults).
    const columns = this.#db.prepare('PRAGMA table_info(versions)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'config')) this.#db.exec("ALTER TABLE versions ADD COLUMN config TEXT NOT NULL DEFAULT '{}'");
    this.cron = new SqliteCronTable(this.#db);
  }

  /** Called after every change, so signaling can push the new manifest. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Stores a new version and makes it active. The caller has validated the bundle.
   *
   * @throws {DcdnError} APP_BAD_NAME, APP_BAD_BUNDLE, APP_BAD_CONFIG (also when a KV binding
   *   has the name of one of the app's secrets: both would be `env.NAME`).
   */
  deploy(name: string, code: string, message = '', options: Partial<AppConfig> = {}): AppVersion {
    checkName(name);
    const config = parseAppConfig(options);
    checkCrons(config.crons ?? []);
    const clash = [...config.kv, ...(config.sql ?? []), ...Object.keys(config.vars)].find((b) => this.#db.prepare('SELECT 1 FROM secrets WHERE app = ? AND name = ?').get(name, b));
    if (clash) throw new DcdnError('APP_BAD_CONFIG', `${name} has a secret named ${clash}; a KV binding or var cannot share its name`);
    const size = Buffer.byteLength(code);
    if (size === 0 || size > MAX_BUNDLE_BYTES) throw new DcdnError('APP_BAD_BUNDLE', `bundle is ${size} bytes; it must be 1 to ${MAX_BUNDLE_BYTES}`);
    const sha256 = createHash('sha256').update(code).digest('hex');
    const now = new Date().toISOString();
    const version = this.#db.transaction(() => {
      const row = this.#db.prepare('SELECT MAX(version) AS v FROM versions WHERE app = ?').get(name) as { v: number | null };
      const next = (row.v ?? 0) + 1;
      this.#db.prepare('INSERT INTO apps (name, active_version, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET active_version = excluded.active_version, updated_at = excluded.updated_at').run(name, next, now);
      this.#db.prepare('INSERT INTO versions (app, version, code, sha256, size, message, created_at, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(name, next, code, sha256, size, message.slice(0, 200), now, JSON.stringify(config));
      return next;
    })();
    this.#changed();
    return { app: name, version, sha256, size, createdAt: now, message, config };
  }

  /** Makes an earlier version active: the one given, or the one before the active one. */
  rollback(name: string, to?: number): AppVersion {
    const app = this.#app(name);
    const target =
      to ??
      (this.#db.prepare('SELECT MAX(version) AS v FROM versions WHERE app = ? AND version < ?').get(name, app.active_version) as { v: number | null }).v;
    if (target === null || target === undefined) throw new DcdnError('APP_VERSION_NOT_FOUND', `${name} has no version before ${app.active_version}`);
    const v = this.#version(name, target);
    this.#db.prepare('UPDATE apps SET active_version = ?, updated_at = ? WHERE name = ?').run(target, new Date().toISOString(), name);
    this.#changed();
    return v;
  }

  delete(name: string): void {
    this.#app(name);
    this.#db.prepare('DELETE FROM apps WHERE name = ?').run(name);
    this.#changed();
  }

  putSecret(name: string, secret: string, value: string): void {
    this.#app(name);
    if (!BINDING_NAME.test(secret)) throw new DcdnError('APP_BAD_SECRET', `secret names are identifiers: ${JSON.stringify(secret.slice(0, 70))}`);
    const live = this.manifest().find((a) => a.name === name)?.config;
    if (live?.kv.includes(secret)) throw new DcdnError('APP_BAD_SECRET', `${name} has a KV binding named ${secret}; a secret cannot share its name`);
    if (live && Object.hasOwn(live.vars, secret)) throw new DcdnError('APP_BAD_SECRET', `${name} has a var named ${secret}; a secret cannot share its name`);
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new DcdnError('APP_BAD_SECRET', `a secret is at most ${MAX_SECRET_BYTES} bytes`);
    this.#db.prepare('INSERT INTO secrets (app, name, value) VALUES (?, ?, ?) ON CONFLICT(app, name) DO UPDATE SET value = excluded.value').run(name, secret, value);
    this.#db.prepare('UPDATE apps SET updated_at = ? WHERE name = ?').run(new Date().toISOString(), name);
    this.#changed();
  }

  deleteSecret(name: string, secret: string): boolean {
    this.#app(name);
    const gone = this.#db.prepare('DELETE FROM secrets WHERE app = ? AND name = ?').run(name, secret).changes > 0;
    if (gone) this.#changed();
    return gone;
  }

  list(): AppSummary[] {
    const apps = this.#db.prepare('SELECT name, active_version, updated_at FROM apps ORDER BY name').all() as AppRow[];
    return apps.map((a) => ({
      name: a.name,
      activeVersion: a.active_version,
      updatedAt: a.updated_at,
      versions: (this.#db.prepare('SELECT app, version, sha256, size, message, created_at, config FROM versions WHERE app = ? ORDER BY version').all(a.name) as VersionRow[]).map(toVersion),
      secrets: (this.#db.prepare('SELECT name FROM secrets WHERE app = ? ORDER BY name').all(a.name) as Array<{ name: string }>).map((r) => r.name),
    }));
  }

  /**
   * The active version of every app. `sha256` names the deployment, code and secrets together,
   * so hosts reload an app when either changes; with secrets or a config it is an HMAC under a
   * key that never leaves this store, so it tells nothing about the secrets' values.
   */
  manifest(): AppManifestEntry[] {
    const rows = this.#db.prepare('SELECT a.name, a.active_version AS version, v.sha256, v.config FROM apps a JOIN versions v ON v.app = a.name AND v.version = a.active_version ORDER BY a.name').all() as Array<{ name: string; version: number; sha256: string; config: string }>;
    return rows.map((r) => {
      const config = readConfig(r.config);
      const secrets = this.#db.prepare('SELECT name, value FROM secrets WHERE app = ? ORDER BY name').all(r.name) as Array<{ name: string; value: string }>;
      return { name: r.name, version: r.version, sha256: deploymentId(this.#deploymentKey, r.sha256, config, secrets), config };
    });
  }

  /** A random value of this store's, created on first read (`deployment_key`, `peer_key`). */
  meta(key: 'deployment_key' | 'peer_key'): string {
    this.#db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(key, randomBytes(32).toString('hex'));
    return (this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string }).value;
  }

  /** The code of one version (hosts fetch it by name, version and hash). */
  code(name: string, version: number): { code: string; sha256: string } | undefined {
    return this.#db.prepare('SELECT code, sha256 FROM versions WHERE app = ? AND version = ?').get(name, version) as { code: string; sha256: string } | undefined;
  }

  /** Secret values, for trusted hosts only. */
  secrets(name: string): Record<string, string> {
    const rows = this.#db.prepare('SELECT name, value FROM secrets WHERE app = ?').all(name) as Array<{ name: string; value: string }>;
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  close(): void {
    this.#db.close();
  }

  #app(name: string): AppRow {
    checkName(name);
    const row = this.#db.prepare('SELECT name, active_version, updated_at FROM apps WHERE name = ?').get(name) as AppRow | undefined;
    if (!row) throw new DcdnError('APP_NOT_FOUND', `no app named ${name}`);
    return row;
  }

  #version(name: string, version: number): AppVersion {
    const row = this.#db.prepare('SELECT app, version, sha256, size, message, created_at, config FROM versions WHERE app = ? AND version = ?').get(name, version) as VersionRow | undefined;
    if (!row) throw new DcdnError('APP_VERSION_NOT_FOUND', `${name} has no version ${version}`);
    return toVersion(row);
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }
}

interface AppRow {
  name: string;
  active_version: number;
  updated_at: string;
}
interface VersionRow {
  app: string;
  version: number;
  sha256: string;
  size: number;
  message: string;
  created_at: string;
  config: string;
}

function toVersion(r: VersionRow): AppVersion {
  return { app: r.app, version: r.version, sha256: r.sha256, size: r.size, message: r.message, createdAt: r.created_at, config: readConfig(r.config) };
}

/**
 * The id of a deployment as hosts see it (`AppManifestEntry.sha256`): the code's hash alone for
 * a plain app; with a config or secrets, an HMAC under the store's `deployment_key` over the
 * code's hash, the config and the secrets (sorted by name). Every control store computes it
 * this way, so every signaling node of a cluster names one deployment alike.
 */
export function deploymentId(key: string, codeSha256: string, config: AppConfig, secrets: ReadonlyArray<{ name: string; value: string }>): string {
  const plain = JSON.stringify(config) === JSON.stringify(parseAppConfig({}));
  if (secrets.length === 0 && plain) return codeSha256;
  const hash = createHmac('sha256', key).update(codeSha256);
  if (!plain) hash.update(JSON.stringify(config));
  if (secrets.length > 0) hash.update(JSON.stringify(secrets.map((s) => ({ name: s.name, value: s.value }))));
  return hash.digest('hex');
}

/** A stored config; one this build cannot read (written by a newer one) counts as the default. */
export function readConfig(json: string): AppConfig {
  try {
    return parseAppConfig(JSON.parse(json));
  } catch {
    return parseAppConfig({});
  }
}

/** @throws {DcdnError} APP_BAD_NAME unless `name` is a DNS label. */
export function checkName(name: string): void {
  if (!APP_NAME.test(name)) {
    throw new DcdnError('APP_BAD_NAME', `app names are lowercase letters, digits and dashes (a DNS label, at most 63): ${JSON.stringify(name.slice(0, 70))}`);
  }
}
