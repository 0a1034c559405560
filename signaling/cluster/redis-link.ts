/**
 * One signaling node's connections to the coordination Redis, shared by its presence, bus and
 * ephemeral store: a command connection (scripts, writes: one connection, so pipelined bus
 * messages keep their order) and a blocking reader connection (stream-reader.ts). It also owns
 * the dataset generation and whether Redis is reachable, so every part sees one state.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl } from '../../protocol/index.ts';
import { SCRIPTS, type ScriptName } from './redis-scripts.ts';
import { PresenceUnavailableError, type ClusterLog } from './types.ts';

/** Every timing and bound of the Redis coordination; docs/cluster-redis.md says why each value. */
export interface RedisClusterTimings {
  /** A command (register, renew, send, …) with no reply after this throws PresenceUnavailableError. Default 2000. */
  commandTimeoutMs: number;
  /** Connecting at start gives up after this. Default 2000. */
  connectTimeoutMs: number;
  /** How long one XREAD blocks on the reader connection. Default 5000. */
  blockMs: number;
  /** The reader connection's command timeout: a frozen Redis (no FIN) is noticed this late. Default blockMs + 2000. */
  readerTimeoutMs: number;
  /** Node heartbeat period. Default 2000. */
  heartbeatIntervalMs: number;
  /** A node not heard from this long is dead. Default 6000. */
  nodeLeaseMs: number;
  /** A presence entry not renewed this long is swept (lease-expired). Default 15 000. */
  entryLeaseMs: number;
  /** Hashes outlive their lease this long, so the janitor can still read them to emit `leave`. Default 30 000. */
  leaseGraceMs: number;
  /** Janitor period (dead nodes, expired leases). Default 2000. */
  janitorIntervalMs: number;
  /** How long one node holds `janitor:<dead>`. Default 10 000. */
  janitorLockMs: number;
  /** Keys per renew script and per janitor script. Default 500. */
  batch: number;
  /** Entries per XREAD. Default 500. */
  readCount: number;
  /** Approximate cap of the events stream. Default 100 000 (16 min at 100 events/s). */
  eventsMaxLen: number;
  /** Approximate cap of each node's inbox stream. Default 10 000. */
  inboxMaxLen: number;
  /** A node's inbox expires this long after its last heartbeat. Default 60 000. */
  inboxTtlMs: number;
}

export const REDIS_CLUSTER_TIMINGS: Readonly<RedisClusterTimings> = Object.freeze({
  commandTimeoutMs: 2000,
  connectTimeoutMs: 2000,
  blockMs: 5000,
  readerTimeoutMs: 7000,
  heartbeatIntervalMs: 2000,
  nodeLeaseMs: 6000,
  entryLeaseMs: 15_000,
  leaseGraceMs: 30_000,
  janitorIntervalMs: 2000,
  janitorLockMs: 10_000,
  batch: 500,
  readCount: 500,
  eventsMaxLen: 100_000,
  inboxMaxLen: 10_000,
  inboxTtlMs: 60_000,
});

export interface RedisLinkOptions {
  /** `redis://`, `rediss://` or `redis+unix:///path` (protocol/redis-url.ts). */
  url: string;
  clusterName: string;
  nodeId: string;
  log?: ClusterLog;
  timings?: Partial<RedisClusterTimings>;
}

type ScriptCall = (...args: Array<string | number>) => Promise<unknown>;

export class RedisLink {
  readonly cmd: Redis;
  readonly reader: Redis;
  /** `dcdn:{<cluster>}:`: the hash tag keeps every key in one slot. */
  readonly prefix: string;
  readonly nodeId: string;
  readonly timings: RedisClusterTimings;
  readonly log: ClusterLog;
  #gen = '';
  #genChanged = false;
  #down = false;
  /** When (this process's clock) the current or last outage began and ended, and how many there were. */
  #downAt = 0;
  #upAt = 0;
  #outages = 0;
  #closed = false;
  readonly #onUp = new Set<() => void>();
  readonly #onGen = new Set<() => void>();

  private constructor(cmd: Redis, reader: Redis, opts: RedisLinkOptions, timings: RedisClusterTimings) {
    this.cmd = cmd;
    this.reader = reader;
    this.prefix = `dcdn:{${opts.clusterName}}:`;
    this.nodeId = opts.nodeId;
    this.timings = timings;
    this.log = opts.log ?? (() => undefined);
    for (const [name, lua] of Object.entries(SCRIPTS)) cmd.defineCommand(name, { lua, numberOfKeys: 0 });
    // "Down" is about the command connection, which every call uses; the reader's own failures
    // reset the tails it serves (stream-reader.ts) without calling all of Redis down.
    cmd.on('error', (err: Error & { code?: string }) => this.#markDown(err.code ?? err.message));
    reader.on('error', () => undefined);
  }

  /** Connects both connections; rejects with PresenceUnavailableError when Redis does not answer in time. */
  static async open(opts: RedisLinkOptions): Promise<RedisLink> {
    const t: RedisClusterTimings = { ...REDIS_CLUSTER_TIMINGS, ...opts.timings };
    if (opts.timings?.readerTimeoutMs === undefined) t.readerTimeoutMs = t.blockMs + 2000;
    let endpoint: RedisOptions;
    try {
      endpoint = parseRedisUrl(opts.url);
    } catch (err) {
      throw new PresenceUnavailableError(`cluster: ${(err as Error).message}`);
    }
    const base: RedisOptions = {
      ...endpoint,
      lazyConnect: true,
      // Fail at once while disconnected instead of queueing: the hub runs as an island meanwhile.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A resent register would take a second epoch: fail in-flight commands instead.
      autoResendUnfulfilledCommands: false,
      connectTimeout: t.connectTimeoutMs,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    };
    // Named for CLIENT LIST (operators, and the bus test that kills the reader); names may not hold spaces.
    const name = `dcdn:${opts.nodeId.replace(/[^\w.:-]/g, '_')}`;
    const cmd = new Redis({ ...base, commandTimeout: t.commandTimeoutMs, connectionName: `${name}:cmd` });
    const reader = new Redis({ ...base, commandTimeout: t.readerTimeoutMs, connectionName: `${name}:reader` });
    const early = (): void => undefined;
    cmd.on('error', early);
    reader.on('error', early);
    try {
      await Promise.all([cmd.connect(), reader.connect()]);
    } catch (err) {
      cmd.disconnect();
      reader.disconnect();
      throw new PresenceUnavailableError(`cluster: cannot reach Redis at ${redact(opts.url)}: ${(err as Error).message}`);
    }
    cmd.off('error', early);
    reader.off('error', early);
    const link = new RedisLink(cmd, reader, opts, t);
    try {
      await link.initGen();
    } catch (err) {
      await link.close();
      throw err;
    }
    return link;
  }

  /** `dcdn:{c}:<name>`. */
  key(name: string): string {
    return this.prefix + name;
  }

  get gen(): string {
    return this.#gen;
  }

  get down(): boolean {
    return this.#down;
  }

  /** How many times Redis became unreachable: a job that spans a change saw an outage. */
  get outages(): number {
    return this.#outages;
  }

  /**
   * While Redis is unreachable, and for one node lease after it answers again, leases are no
   * evidence of death: every lease ran on while nobody could renew it (a frozen Redis keeps its
   * clock), and the live nodes have not had their first heartbeat and renew through yet.
   * Returns how long the last outage lasted plus a command timeout (what a lease may be
   * overdue by), or 0 when settled.
   */
  settlingSlackMs(now = Date.now()): number {
    if (this.#down) return Math.max(0, now - this.#downAt) + this.timings.commandTimeoutMs;
    if (this.#upAt === 0 || now - this.#upAt >= this.timings.nodeLeaseMs) return 0;
    return this.#upAt - this.#downAt + this.timings.commandTimeoutMs;
  }

  /** Whether the generation changed since the last call (renew reports it once). */
  takeGenChanged(): boolean {
    const changed = this.#genChanged;
    this.#genChanged = false;
    return changed;
  }

  /** Called when Redis answers again after a failure: the stream tail may have been lost. */
  onUp(cb: () => void): () => void {
    this.#onUp.add(cb);
    return () => this.#onUp.delete(cb);
  }

  /** Called when the dataset generation changed (Redis restarted empty or was flushed). */
  onGenChange(cb: () => void): () => void {
    this.#onGen.add(cb);
    return () => this.#onGen.delete(cb);
  }

  /** Sets the generation if absent (the first node wins) and adopts the current one. */
  async initGen(): Promise<void> {
    const gen = String(await this.script('initGen', 'dcdnInitGen', randomBytes(8).toString('hex')));
    if (this.#gen !== '' && gen !== this.#gen) {
      this.#genChanged = true;
      this.log('warn', 'cluster: the Redis dataset is new (restarted empty or flushed): re-registering this node and its peers', { node: this.nodeId, gen });
      this.#gen = gen;
      for (const cb of [...this.#onGen]) cb();
      return;
    }
    this.#gen = gen;
  }

  /** Runs one of SCRIPTS with ARGV = [prefix, ...args]. */
  script(what: string, name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    const fn = (this.cmd as unknown as Record<ScriptName, ScriptCall>)[name];
    return this.call(what, fn.call(this.cmd, this.prefix, ...args));
  }

  /**
   * Awaits a Redis reply. Connection failures, timeouts and unexpected error replies become
   * PresenceUnavailableError (and mark Redis down); the scripts' own DCDN_* replies pass through.
   */
  async call<T>(what: string, reply: Promise<T>): Promise<T> {
    let value: T;
    try {
      value = await reply;
    } catch (err) {
      if (scriptError(err) !== null) {
        this.#markUp();
        throw err;
      }
      if (this.#closed) throw new PresenceUnavailableError(`cluster: ${what}: closed`);
      this.#markDown((err as Error).message);
      throw new PresenceUnavailableError(`cluster: ${what}: ${(err as Error).message}`);
    }
    this.#markUp();
    return value;
  }

  #markDown(why: string): void {
    if (this.#down || this.#closed) return;
    this.#down = true;
    this.#downAt = Date.now();
    this.#outages++;
    this.log('error', 'cluster: Redis unreachable; this node runs as an island until it is back', { node: this.nodeId, err: why });
  }

  #markUp(): void {
    if (!this.#down || this.#closed) return;
    this.#down = false;
    this.#upAt = Date.now();
    this.log('info', 'cluster: Redis answers again; resyncing', { node: this.nodeId });
    for (const cb of [...this.#onUp]) cb();
  }

  get closed(): boolean {
    return this.#closed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onUp.clear();
    this.#onGen.clear();
    // The reader may be blocked in XREAD for up to blockMs: drop it rather than wait for QUIT's turn.
    this.reader.disconnect();
    await quit(this.cmd);
  }
}

/** Quits politely when connected, else drops the connection (no reconnect either way). */
async function quit(r: Redis): Promise<void> {
  if (r.status === 'ready') {
    try {
      await r.quit();
      return;
    } catch {
      // fall through
    }
  }
  r.disconnect();
}

/** The URL without its password, for logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** The `DCDN_*` error a script replied with (redis-scripts.ts), or null for any other failure. */
export function scriptError(err: unknown): 'DCDN_GEN' | 'DCDN_LIMIT' | null {
  const m = /^(?:ERR )?(DCDN_GEN|DCDN_LIMIT)\b/.exec(err instanceof Error ? err.message : '');
  return m ? (m[1] as 'DCDN_GEN' | 'DCDN_LIMIT') : null;
}
