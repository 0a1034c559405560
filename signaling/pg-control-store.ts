/**
 * The control plane of a cluster of signaling nodes in Postgres (docs/cluster-control.md): apps,
 * versions, secrets, bans and keys in the `dcdn_*` tables (created if absent), with the same
 * rules and answers as the SQLite store of one machine (app-store.ts, bans.ts).
 *
 * - Every write is one transaction that also bumps `dcdn_control.version` and sends
 *   `pg_notify('dcdn_control', '{"v":N,"what":"apps"|"bans"}')`; the notification leaves only
 *   on commit, so no node hears of a write that did not happen.
 * - Concurrent deploys of one app serialise on its row (`SELECT … FOR UPDATE`); the primary key
 *   (app, version) keeps version numbers unique. `deployIfChanged` also holds
 *   `pg_advisory_xact_lock`, so M nodes starting at once with `--app` create one version.
 * - `watch` LISTENs on a connection of its own and polls `version()` every `pollIntervalMs`:
 *   a notification sent while the listener was reconnecting is never delivered, the poll sees it.
 * - Every call gives up after `timeoutMs` (connect, statement and a deadline of its own over the
 *   whole call) with `APP_STORE_UNAVAILABLE`, so a down Postgres fails a deploy within 5 s.
 *
 * Postgres-only features used, and what CockroachDB would use instead: LISTEN/NOTIFY (there,
 * the poll alone, or a changefeed) and `pg_advisory_xact_lock`/`hashtext` (there, a
 * `SELECT … FOR UPDATE` on a lock row). The rest is SQL CockroachDB runs.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { BINDING_NAME, DcdnError, parseAppConfig, type AppConfig } from '../protocol/index.ts';
import { checkName, deploymentId, MAX_BUNDLE_BYTES, MAX_SECRET_BYTES, type AppManifestEntry, type AppSummary, type AppVersion } from './app-store.ts';
import type { Ban, BanKind } from './bans.ts';
import type { ControlChange, ControlStore, CronRun, CronState } from './control-store.ts';
import { checkCrons } from './cron-schedule.ts';
import { readRun } from './sqlite-cron.ts';
import { sameDeployment } from './sqlite-control-store.ts';

/** How long one call may take (connect, each statement, and the whole call) before APP_STORE_UNAVAILABLE. */
export const DEFAULT_PG_TIMEOUT_MS = 4000;
/** How often `watch` reads `version()` to heal a lost notification. */
export const DEFAULT_CONTROL_POLL_MS = 10_000;
/** How long the listener waits before reconnecting after its connection broke. */
export const DEFAULT_LISTEN_RETRY_MS = 1000;
/** Connections in the pool (writes are rare, reads are cached). */
export const DEFAULT_PG_POOL_SIZE = 4;
/** The NOTIFY channel every write notifies. */
export const CONTROL_CHANNEL = 'dcdn_control';
/** A transaction that lost a serialization race (40001, CockroachDB's usual answer) is retried this often. */
const MAX_TX_ATTEMPTS = 5;
/** Takes a constant advisory lock so concurrent first starts do not race on CREATE TABLE. */
const SCHEMA_LOCK = 0x64636e; // 'dcn'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dcdn_apps (name text PRIMARY KEY, active_version int NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS dcdn_versions (app text REFERENCES dcdn_apps(name) ON DELETE CASCADE, version int, code text NOT NULL,
  sha256 text NOT NULL, size int NOT NULL, message text NOT NULL DEFAULT '', created_at timestamptz NOT NULL,
  config jsonb NOT NULL DEFAULT '{}', PRIMARY KEY (app, version));
CREATE TABLE IF NOT EXISTS dcdn_secrets (app text REFERENCES dcdn_apps(name) ON DELETE CASCADE, name text, value text NOT NULL, PRIMARY KEY (app, name));
CREATE TABLE IF NOT EXISTS dcdn_bans (id text PRIMARY KEY, kind text NOT NULL, value text NOT NULL, reason text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL, UNIQUE (kind, value));
CREATE TABLE IF NOT EXISTS dcdn_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS dcdn_control (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
INSERT INTO dcdn_control (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS dcdn_cron (app text PRIMARY KEY REFERENCES dcdn_apps(name) ON DELETE CASCADE, last_tick bigint NOT NULL DEFAULT 0, last_run jsonb);
`;

export interface PgControlStoreOptions {
  /** Connect, statement and whole-call timeout. Default {@link DEFAULT_PG_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** `watch`'s version poll. Default {@link DEFAULT_CONTROL_POLL_MS}. */
  pollIntervalMs?: number;
  /** Wait before the listener reconnects. Default {@link DEFAULT_LISTEN_RETRY_MS}. */
  listenRetryMs?: number;
  /** Pool size. Default {@link DEFAULT_PG_POOL_SIZE}. */
  poolSize?: number;
  /** Where the listener's connection losses and recoveries are told. */
  log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

type Client = pg.PoolClient;

export class PgControlStore implements ControlStore {
  readonly kind = 'postgres' as const;
  readonly #url: string;
  readonly #pool: pg.Pool;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #retryMs: number;
  readonly #log: NonNullable<PgControlStoreOptions['log']>;
  readonly #meta = new Map<string, string>();
  readonly #listeners = new Set<(c: ControlChange) => void>();
  /** The highest version told to listeners: each is told once, in order. */
  #seen = -1;
  #listener: pg.Client | null = null;
  /** Set once the listener LISTENs: the poll pings it, since a silent network never errors an idle socket. */
  #listenerUp: { client: pg.Client; lost: (err: Error) => void } | null = null;
  #poll: ReturnType<typeof setInterval> | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  private constructor(url: string, options: PgControlStoreOptions) {
    this.#url = url;
    this.#timeoutMs = positive('timeoutMs', options.timeoutMs ?? DEFAULT_PG_TIMEOUT_MS);
    this.#pollMs = positive('pollIntervalMs', options.pollIntervalMs ?? DEFAULT_CONTROL_POLL_MS);
    this.#retryMs = positive('listenRetryMs', options.listenRetryMs ?? DEFAULT_LISTEN_RETRY_MS);
    this.#log = options.log ?? (() => undefined);
    this.#pool = new pg.Pool({
      connectionString: url,
      max: positive('poolSize', options.poolSize ?? DEFAULT_PG_POOL_SIZE),
      connectionTimeoutMillis: this.#timeoutMs,
      query_timeout: this.#timeoutMs,
      statement_timeout: this.#timeoutMs,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection that breaks (Postgres restarted) is dropped by the pool; without a
    // listener the 'error' event would crash the process.
    this.#pool.on('error', (err) => this.#log('warn', 'control store connection lost', { error: err.message }));
  }

  /**
   * Connects and creates the schema if absent.
   *
   * @throws {DcdnError} APP_STORE_UNAVAILABLE when Postgres does not answer within the timeout.
   * @example
   * ```ts
   * const store = await PgControlStore.open('postgres://dcdn@db.internal/dcdn');
   * ```
   */
  static async open(url: string, options: PgControlStoreOptions = {}): Promise<PgControlStore> {
    const store = new PgControlStore(url, options);
    try {
      await store.#tx(async (c) => {
        // CREATE TABLE IF NOT EXISTS is not safe against itself (two nodes' first start race
        // on the catalog), so the schema is made under a lock.
        await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
        await c.query(SCHEMA);
      });
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  async deploy(name: string, code: string, message: string, options: Partial<AppConfig>): Promise<AppVersion> {
    const d = prepareDeploy(name, code, message, options);
    return this.#write('apps', async (c) => ({ value: await deployIn(c, d), changed: true }));
  }

  async deployIfChanged(name: string, code: string, message: string, options: Partial<AppConfig>): Promise<AppVersion | null> {
    const d = prepareDeploy(name, code, message, options);
    return this.#write('apps', async (c) => {
      // Held to the end of the transaction: a second node starting with the same --app waits
      // here, then sees this one's version as active and deploys nothing.
      await c.query("SELECT pg_advisory_xact_lock(hashtext('dcdn:' || $1))", [name]);
      const { rows } = await c.query<{ sha256: string; config: unknown }>('SELECT v.sha256, v.config FROM dcdn_apps a JOIN dcdn_versions v ON v.app = a.name AND v.version = a.active_version WHERE a.name = $1', [name]);
      const active = rows[0];
      if (active && sameDeployment(active.sha256, storedConfig(active.config), code, options)) return { value: null, changed: false };
      return { value: await deployIn(c, d), changed: true };
    });
  }

  async rollback(name: string, to?: number): Promise<AppVersion> {
    checkName(name);
    return this.#write('apps', async (c) => {
      const active = await lockApp(c, name);
      let target = to;
      if (target === undefined) {
        const { rows } = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM dcdn_versions WHERE app = $1 AND version < $2', [name, active]);
        if (rows[0]?.v === null || rows[0]?.v === undefined) throw new DcdnError('APP_VERSION_NOT_FOUND', `${name} has no version before ${active}`);
        target = Number(rows[0].v);
      }
      const { rows } = await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM dcdn_versions WHERE app = $1 AND version = $2`, [name, int(target)]);
      if (!rows[0]) throw new DcdnError('APP_VERSION_NOT_FOUND', `${name} has no version ${target}`);
      await c.query('UPDATE dcdn_apps SET active_version = $2, updated_at = $3 WHERE name = $1', [name, target, new Date().toISOString()]);
      return { value: toVersion(rows[0]), changed: true };
    });
  }

  async delete(name: string): Promise<void> {
    checkName(name);
    await this.#write('apps', async (c) => {
      const { rowCount } = await c.query('DELETE FROM dcdn_apps WHERE name = $1', [name]);
      if (!rowCount) throw new DcdnError('APP_NOT_FOUND', `no app named ${name}`);
      return { value: undefined, changed: true };
    });
  }

  async putSecret(app: string, secret: string, value: string): Promise<void> {
    checkName(app);
    await this.#write('apps', async (c) => {
      const active = await lockApp(c, app);
      if (!BINDING_NAME.test(secret)) throw new DcdnError('APP_BAD_SECRET', `secret names are identifiers: ${JSON.stringify(secret.slice(0, 70))}`);
      const { rows } = await c.query<{ config: unknown }>('SELECT config FROM dcdn_versions WHERE app = $1 AND version = $2', [app, active]);
      const live = rows[0] ? storedConfig(rows[0].config) : undefined;
      if (live?.kv.includes(secret)) throw new DcdnError('APP_BAD_SECRET', `${app} has a KV binding named ${secret}; a secret cannot share its name`);
      if (live && Object.hasOwn(live.vars, secret)) throw new DcdnError('APP_BAD_SECRET', `${app} has a var named ${secret}; a secret cannot share its name`);
      if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new DcdnError('APP_BAD_SECRET', `a secret is at most ${MAX_SECRET_BYTES} bytes`);
      await c.query('INSERT INTO dcdn_secrets (app, name, value) VALUES ($1, $2, $3) ON CONFLICT (app, name) DO UPDATE SET value = excluded.value', [app, secret, value]);
      await c.query('UPDATE dcdn_apps SET updated_at = $2 WHERE name = $1', [app, new Date().toISOString()]);
      return { value: undefined, changed: true };
    });
  }

  async deleteSecret(app: string, secret: string): Promise<boolean> {
    checkName(app);
    return this.#write('apps', async (c) => {
      await lockApp(c, app);
      const { rowCount } = await c.query('DELETE FROM dcdn_secrets WHERE app = $1 AND name = $2', [app, secret]);
      return { value: (rowCount ?? 0) > 0, changed: (rowCount ?? 0) > 0 };
    });
  }

  async list(): Promise<AppSummary[]> {
    return this.#tx(async (c) => {
      const apps = await c.query<{ name: string; active_version: number; updated_at: Date }>('SELECT name, active_version, updated_at FROM dcdn_apps');
      const versions = await c.query<VersionRow>(`SELECT ${VERSION_COLUMNS} FROM dcdn_versions ORDER BY app, version`);
      const secrets = await c.query<{ app: string; name: string }>('SELECT app, name FROM dcdn_secrets');
      return apps.rows.sort((a, b) => byCodePoint(a.name, b.name)).map((a) => ({
        name: a.name,
        activeVersion: a.active_version,
        updatedAt: a.updated_at.toISOString(),
        versions: versions.rows.filter((v) => v.app === a.name).map(toVersion),
        secrets: secrets.rows.filter((s) => s.app === a.name).map((s) => s.name).sort(byCodePoint),
      }));
    }, 'REPEATABLE READ');
  }

  async manifest(): Promise<AppManifestEntry[]> {
    const key = await this.meta('deployment_key');
    // One statement, one snapshot: an entry's version and secrets always belong together.
    const rows = await this.#query<{ name: string; version: number; sha256: string; config: unknown; secrets: Array<{ name: string; value: string }> }>(
      `SELECT a.name, a.active_version AS version, v.sha256, v.config,
         (SELECT COALESCE(json_agg(json_build_object('name', s.name, 'value', s.value)), '[]'::json) FROM dcdn_secrets s WHERE s.app = a.name) AS secrets
       FROM dcdn_apps a JOIN dcdn_versions v ON v.app = a.name AND v.version = a.active_version`,
    );
    return rows
      .sort((a, b) => byCodePoint(a.name, b.name))
      .map((r) => {
        const config = storedConfig(r.config);
        const secrets = [...r.secrets].sort((a, b) => byCodePoint(a.name, b.name));
        return { name: r.name, version: r.version, sha256: deploymentId(key, r.sha256, config, secrets), config };
      });
  }

  async code(name: string, version: number): Promise<{ code: string; sha256: string } | undefined> {
    if (!Number.isInteger(version) || version < 1 || version > 2 ** 31 - 1) return undefined;
    const rows = await this.#query<{ code: string; sha256: string }>('SELECT code, sha256 FROM dcdn_versions WHERE app = $1 AND version = $2', [name, version]);
    return rows[0];
  }

  async secrets(name: string): Promise<Record<string, string>> {
    const rows = await this.#query<{ name: string; value: string }>('SELECT name, value FROM dcdn_secrets WHERE app = $1', [name]);
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async addBan(kind: BanKind, value: string, reason: string): Promise<Ban> {
    return this.#write('bans', async (c) => {
      const { rows } = await c.query<BanRow>(
        'INSERT INTO dcdn_bans (id, kind, value, reason, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason RETURNING id, kind, value, reason, created_at',
        [randomUUID().slice(0, 8), kind, value, reason.slice(0, 200), new Date().toISOString()],
      );
      return { value: toBan(rows[0]!), changed: true };
    });
  }

  async removeBan(id: string): Promise<boolean> {
    return this.#write('bans', async (c) => {
      const { rowCount } = await c.query('DELETE FROM dcdn_bans WHERE id = $1', [id]);
      return { value: (rowCount ?? 0) > 0, changed: (rowCount ?? 0) > 0 };
    });
  }

  async bans(): Promise<Ban[]> {
    return (await this.#query<BanRow>('SELECT id, kind, value, reason, created_at FROM dcdn_bans ORDER BY created_at, id')).map(toBan);
  }

  async meta(key: 'deployment_key' | 'peer_key'): Promise<string> {
    const known = this.#meta.get(key);
    if (known) return known;
    // The first node to ask creates it; every node reads the same one from then on (the keys
    // never change, so each node keeps it once read).
    const value = await this.#tx(async (c) => {
      await c.query('INSERT INTO dcdn_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [key, randomBytes(32).toString('hex')]);
      const { rows } = await c.query<{ value: string }>('SELECT value FROM dcdn_meta WHERE key = $1', [key]);
      return rows[0]!.value;
    });
    this.#meta.set(key, value);
    return value;
  }

  /**
   * One statement: the row moves to `tick` only from an earlier tick, so of any number of nodes
   * claiming one tick at once exactly one gets a row back (the others wait on the row lock, then
   * see the new value and update nothing). An app that is gone fails the foreign key: no claim.
   */
  async claimCronTick(app: string, tick: number): Promise<boolean> {
    try {
      const rows = await this.#query<{ app: string }>(
        `INSERT INTO dcdn_cron (app, last_tick) SELECT name, $2 FROM dcdn_apps WHERE name = $1
         ON CONFLICT (app) DO UPDATE SET last_tick = excluded.last_tick WHERE dcdn_cron.last_tick < excluded.last_tick RETURNING app`,
        [app, tick],
      );
      return rows.length === 1;
    } catch (err) {
      if (sqlStateOf(err) === '23503') return false; // the app was deleted meanwhile
      throw err;
    }
  }

  async recordCronRun(app: string, run: CronRun): Promise<void> {
    await this.#query(
      `INSERT INTO dcdn_cron (app, last_tick, last_run) SELECT name, 0, $2::jsonb FROM dcdn_apps WHERE name = $1
       ON CONFLICT (app) DO UPDATE SET last_run = excluded.last_run`,
      [app, JSON.stringify(run)],
    ).catch((err: unknown) => {
      if (sqlStateOf(err) !== '23503') throw err;
    });
  }

  async cronStates(): Promise<CronState[]> {
    const rows = await this.#query<{ app: string; last_tick: string; last_run: unknown }>('SELECT app, last_tick, last_run FROM dcdn_cron');
    return rows.sort((a, b) => byCodePoint(a.app, b.app)).map((r) => ({ app: r.app, lastTick: Number(r.last_tick), lastRun: readRun(r.last_run) }));
  }

  async version(): Promise<number> {
    const rows = await this.#query<{ version: string }>('SELECT version FROM dcdn_control WHERE id = 1');
    return Number(rows[0]?.version ?? 0);
  }

  watch(onChange: (c: ControlChange) => void): () => void {
    this.#listeners.add(onChange);
    if (this.#listeners.size === 1 && !this.#closed) this.#startWatching();
    return () => {
      this.#listeners.delete(onChange);
      if (this.#listeners.size === 0) this.#stopWatching();
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#stopWatching();
    await this.#pool.end().catch(() => undefined);
  }

  #startWatching(): void {
    this.#poll = setInterval(() => void this.#checkVersion(), this.#pollMs);
    this.#poll.unref?.();
    void this.#listen();
  }

  #stopWatching(): void {
    clearInterval(this.#poll);
    clearTimeout(this.#retry);
    this.#poll = undefined;
    this.#listenerUp = null;
    const listener = this.#listener;
    this.#listener = null;
    void listener?.end().catch(() => undefined);
  }

  /** One LISTEN connection; on loss it reconnects after `listenRetryMs` and re-reads the version. */
  async #listen(): Promise<void> {
    if (this.#closed || this.#listeners.size === 0) return;
    const client = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: this.#timeoutMs, query_timeout: this.#timeoutMs });
    this.#listener = client;
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      if (this.#listenerUp?.client === client) this.#listenerUp = null;
      void client.end().catch(() => undefined);
      if (this.#listener !== client) return; // stopped on purpose
      this.#listener = null;
      this.#log('warn', 'control store listener lost; reconnecting', { error: err?.message, retryMs: this.#retryMs });
      this.#retry = setTimeout(() => void this.#listen(), this.#retryMs);
      this.#retry.unref?.();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (n) => {
      if (n.channel !== CONTROL_CHANNEL || !n.payload) return;
      try {
        const { v, what } = JSON.parse(n.payload) as { v: number; what: ControlChange['what'] };
        this.#tell({ version: v, what });
      } catch {
        void this.#checkVersion();
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CONTROL_CHANNEL}`);
    } catch (err) {
      return onLost(err as Error);
    }
    // Stopped (closed, or the last watcher left) while connecting: this connection is not wanted.
    if (this.#listener !== client) return void client.end().catch(() => undefined);
    this.#listenerUp = { client, lost: onLost };
    // Whatever was committed while no one listened was never notified here: read it now.
    await this.#checkVersion();
  }

  /** The poll: a version above the last one told means a notification was lost. */
  async #checkVersion(): Promise<void> {
    // The listening connection only reads; after a silent partition it could sit "open" for
    // minutes without hearing anything. A query on it (bounded by query_timeout) finds out.
    const up = this.#listenerUp;
    if (up && this.#listener === up.client) {
      up.client.query('SELECT 1').catch((err: Error) => up.lost(err));
    }
    let version: number;
    try {
      version = await this.version();
    } catch {
      return; // down: the next poll, or the reconnected listener, tries again
    }
    // What changed is unknown: both kinds are told, and listeners re-read what they cache.
    if (version > this.#seen) {
      this.#tell({ version, what: 'apps' });
      this.#tell({ version, what: 'bans' }, true);
    }
  }

  #tell(change: ControlChange, again = false): void {
    if (change.version <= this.#seen && !again) return;
    this.#seen = Math.max(this.#seen, change.version);
    for (const l of [...this.#listeners]) l(change);
  }

  /**
   * One write transaction: `run`, then (when it changed something) the version bump and the
   * notification, committed together.
   */
  async #write<T>(what: ControlChange['what'], run: (c: Client) => Promise<{ value: T; changed: boolean }>): Promise<T> {
    return this.#tx(async (c) => {
      const { value, changed } = await run(c);
      if (!changed) return value;
      // The single control row is also what orders all writes: versions follow commit order.
      const { rows } = await c.query<{ version: string }>('UPDATE dcdn_control SET version = version + 1 WHERE id = 1 RETURNING version');
      await c.query('SELECT pg_notify($1, $2)', [CONTROL_CHANNEL, JSON.stringify({ v: Number(rows[0]!.version), what })]);
      return value;
    });
  }

  async #query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.#deadline(async (state) => {
      const c = await this.#checkout();
      try {
        if (state.expired) throw unavailable(new Error('timed out'), this.#timeoutMs);
        const { rows } = await c.query<R>(sql, params);
        c.done();
        return rows;
      } catch (err) {
        c.done(err);
        throw err;
      }
    });
  }

  /** Runs `run` in a transaction, retrying serialization failures; every failure to reach Postgres becomes APP_STORE_UNAVAILABLE. */
  async #tx<T>(run: (c: Client) => Promise<T>, isolation?: 'REPEATABLE READ'): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#deadline(async (state) => {
          const c = await this.#checkout();
          try {
            if (state.expired) throw new Error('timed out before the transaction began');
            await c.query(isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN');
            const value = await run(c);
            // Past the deadline the caller was told the write failed: it must not commit after all.
            if (state.expired) throw new Error('timed out before commit');
            await c.query('COMMIT');
            c.done();
            return value;
          } catch (err) {
            // A broken connection is dropped (Postgres rolls back what it had); a live one rolls back.
            if (!brokenConnection(err)) await c.query('ROLLBACK').catch(() => undefined);
            c.done(err);
            throw err;
          }
        });
      } catch (err) {
        const sqlState = sqlStateOf(err);
        if ((sqlState === '40001' || sqlState === '40P01') && attempt < MAX_TX_ATTEMPTS) continue;
        throw toStoreError(err, this.#timeoutMs);
      }
    }
  }

  /**
   * A pooled connection, with an error listener while it is out: a socket error (EPIPE when
   * Postgres died) is emitted on the client besides failing its query, and would otherwise
   * crash the process. `done(err)` drops a broken connection instead of pooling it again.
   */
  async #checkout(): Promise<Client & { done(err?: unknown): void }> {
    const c = await this.#pool.connect();
    const onError = (err: Error) => this.#log('warn', 'control store connection failed', { error: err.message });
    c.on('error', onError);
    return Object.assign(c, {
      done: (err?: unknown) => {
        const broken = err !== undefined && brokenConnection(err);
        // A dropped connection may still report its socket's end: keep listening to it.
        if (!broken) c.off('error', onError);
        c.release(broken ? (err as Error) : undefined);
      },
    });
  }

  /** Rejects with APP_STORE_UNAVAILABLE after `timeoutMs`, whatever `run` is waiting for. */
  #deadline<T>(run: (state: { expired: boolean }) => Promise<T>): Promise<T> {
    const state = { expired: false };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        state.expired = true;
        reject(unavailable(new Error(`no answer within ${this.#timeoutMs} ms`), this.#timeoutMs));
      }, this.#timeoutMs);
      run(state).then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err) => {
          clearTimeout(timer);
          reject(toStoreError(err, this.#timeoutMs));
        },
      );
    });
  }
}

interface PreparedDeploy {
  name: string;
  code: string;
  message: string;
  config: AppConfig;
  sha256: string;
  size: number;
}

/** The checks a deploy passes before it touches the database (the same as AppStore's). */
function prepareDeploy(name: string, code: string, message: string, options: Partial<AppConfig>): PreparedDeploy {
  checkName(name);
  const config = parseAppConfig(options);
  checkCrons(config.crons ?? []);
  const size = Buffer.byteLength(code);
  if (size === 0 || size > MAX_BUNDLE_BYTES) throw new DcdnError('APP_BAD_BUNDLE', `bundle is ${size} bytes; it must be 1 to ${MAX_BUNDLE_BYTES}`);
  return { name, code, message, config, sha256: createHash('sha256').update(code).digest('hex'), size };
}

async function deployIn(c: Client, d: PreparedDeploy): Promise<AppVersion> {
  const now = new Date().toISOString();
  // A first deploy has no row to lock: insert a placeholder (a concurrent first deploy waits on
  // its key, then finds the row), then lock the row, so deploys of one app run one at a time.
  await c.query('INSERT INTO dcdn_apps (name, active_version, updated_at) VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING', [d.name, now]);
  await c.query('SELECT name FROM dcdn_apps WHERE name = $1 FOR UPDATE', [d.name]);
  const bindings = [...d.config.kv, ...(d.config.sql ?? []), ...Object.keys(d.config.vars)];
  if (bindings.length > 0) {
    const { rows } = await c.query<{ name: string }>('SELECT name FROM dcdn_secrets WHERE app = $1 AND name = ANY($2::text[])', [d.name, bindings]);
    if (rows[0]) throw new DcdnError('APP_BAD_CONFIG', `${d.name} has a secret named ${rows[0].name}; a KV binding or var cannot share its name`);
  }
  const { rows } = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM dcdn_versions WHERE app = $1', [d.name]);
  const version = Number(rows[0]?.v ?? 0) + 1;
  await c.query('INSERT INTO dcdn_versions (app, version, code, sha256, size, message, created_at, config) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)', [
    d.name,
    version,
    d.code,
    d.sha256,
    d.size,
    d.message.slice(0, 200),
    now,
    JSON.stringify(d.config),
  ]);
  await c.query('UPDATE dcdn_apps SET active_version = $2, updated_at = $3 WHERE name = $1', [d.name, version, now]);
  return { app: d.name, version, sha256: d.sha256, size: d.size, createdAt: now, message: d.message, config: d.config };
}

/** Locks an app's row for this transaction and returns its active version. @throws APP_NOT_FOUND */
async function lockApp(c: Client, name: string): Promise<number> {
  const { rows } = await c.query<{ active_version: number }>('SELECT active_version FROM dcdn_apps WHERE name = $1 FOR UPDATE', [name]);
  if (!rows[0]) throw new DcdnError('APP_NOT_FOUND', `no app named ${name}`);
  return rows[0].active_version;
}

const VERSION_COLUMNS = 'app, version, sha256, size, message, created_at, config';
interface VersionRow {
  app: string;
  version: number;
  sha256: string;
  size: number;
  message: string;
  created_at: Date;
  config: unknown;
}
interface BanRow {
  id: string;
  kind: BanKind;
  value: string;
  reason: string;
  created_at: Date;
}

function toVersion(r: VersionRow): AppVersion {
  return { app: r.app, version: r.version, sha256: r.sha256, size: r.size, message: r.message, createdAt: r.created_at.toISOString(), config: storedConfig(r.config) };
}

function toBan(r: BanRow): Ban {
  return { id: r.id, kind: r.kind, value: r.value, reason: r.reason, createdAt: r.created_at.toISOString() };
}

/** A stored config (jsonb arrives parsed); one this build cannot read counts as the default. */
function storedConfig(value: unknown): AppConfig {
  try {
    return parseAppConfig(value);
  } catch {
    return parseAppConfig({});
  }
}

/** SQLite's BINARY order, so both stores list alike whatever the database's collation. */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function int(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 31 - 1) throw new DcdnError('APP_VERSION_NOT_FOUND', `there is no version ${n}`);
  return n;
}

/** A five-character SQLSTATE from Postgres (not a Node socket error such as EPIPE). */
function sqlStateOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; syscall?: unknown } | null;
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.syscall === undefined ? e.code : undefined;
}

/**
 * Whether Postgres could not be reached or gave up on us: no SQLSTATE (a socket error, a pg
 * client timeout), or class 08 (connection), 53 (resources), 57 (shutdown, statement_timeout),
 * 58 (system). Other SQLSTATEs are errors in a statement: bugs, not outages.
 */
function brokenConnection(err: unknown): boolean {
  if (errorCodeIsDcdn(err)) return false;
  const state = sqlStateOf(err);
  return state === undefined || ['08', '53', '57', '58'].includes(state.slice(0, 2));
}

function errorCodeIsDcdn(err: unknown): boolean {
  return err instanceof DcdnError || (err as { name?: unknown } | null)?.name === 'DcdnError';
}

function toStoreError(err: unknown, timeoutMs: number): unknown {
  if (errorCodeIsDcdn(err)) return err;
  return brokenConnection(err) ? unavailable(err, timeoutMs) : err;
}

function unavailable(cause: unknown, timeoutMs: number): DcdnError {
  return new DcdnError('APP_STORE_UNAVAILABLE', `the control store (Postgres) did not answer: ${(cause as Error)?.message ?? cause} (timeout ${timeoutMs} ms)`, { cause });
}

function positive(name: string, value: number): number {
  if (!(typeof value === 'number' && value > 0 && Number.isFinite(value))) throw new RangeError(`${name} must be a positive number`);
  return value;
}
