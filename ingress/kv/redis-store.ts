import { Redis, type RedisOptions, type Result } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { DcdnError, errorCodeOf, parseRedisUrl } from '../../protocol/index.ts';
import type { KvEntry, KvListOptions, KvListResult, KvPutOptions, KvStore, KvStoreOptions } from './store.ts';
import { decodeCursor, encodeCursor, prefixEnd } from './key-range.ts';

/** Most bytes per GETRANGE, and so per chunk a reader gets. */
const CHUNK_BYTES = 64 * 1024;
/** How long an unfinished value may take to arrive before Redis drops it (crash leftovers). */
const UNFINISHED_TTL_MS = 60 * 60 * 1000;
/** Keys one sweep or drop script handles per call, so no script blocks Redis for long. */
const BATCH = 1000;
/** Index members one list call may walk past (expired ones) before it returns a short page. */
const LIST_SCAN_CAP = 10_000;

export interface RedisKvStoreOptions extends KvStoreOptions {
  /** Prefix of every Redis key this store writes. Default 'dcdn:kv:'. */
  keyPrefix?: string;
  /** Default 2000 ms. */
  connectTimeoutMs?: number;
  /** A command with no reply after this fails with KV_STORE_UNAVAILABLE. Default 5000 ms. */
  commandTimeoutMs?: number;
  /** How often expired entries are removed from the list indexes. Default 60 000 ms. */
  sweepIntervalMs?: number;
  /**
   * Where connection trouble is reported: the connection dropping (once, not once per retry),
   * coming back, and failed background work. Calls still fail with KV_STORE_UNAVAILABLE.
   * Default: nothing is logged.
   */
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * KV in Redis, shared by every ingress node pointed at the same (standalone) Redis.
 *
 * Keys, with N the namespace's prefix `<keyPrefix><byte length of ns>:<ns>:` (the length keeps
 * 'a' and 'a:b' apart):
 * - `N i`: sorted set of the namespace's keys, all at score 0, so ZRANGEBYLEX lists by bytes;
 * - `N x`: sorted set of keys that expire, scored by expiration in ms (count, sweep);
 * - `N e:<key>`: the entry, a hash of value id (v), size (s), expiration (x), metadata (m);
 * - `N v:<id>`: the value's bytes under a fresh random id, APPENDed as chunks arrive;
 * - `<keyPrefix>expiring`: namespaces that have expiring keys, scored by the earliest.
 * A Lua script swaps the entry to the new value id atomically; the replaced value key gets a
 * TTL of `readGraceMs` instead of being deleted, so readers (GETRANGE in 64 KiB steps) finish.
 * An expiring entry's keys expire in Redis `readGraceMs` after its expiration; reads compare
 * with the store's clock, so expiry is exact whatever Redis has reclaimed yet.
 *
 * Needs Redis 6.2 or later (ZADD LT). Scripts derive key names from the namespace prefix, so
 * Redis Cluster is not supported.
 *
 * @example
 * ```ts
 * const store = await RedisKvStore.connect('redis://127.0.0.1:6379/0');
 * ```
 */
export class RedisKvStore implements KvStore {
  readonly kind = 'redis';
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  readonly #log: RedisKvStoreOptions['log'];

  private constructor(redis: Redis, options: RedisKvStoreOptions) {
    this.#redis = redis;
    this.#prefix = options.keyPrefix ?? 'dcdn:kv:';
    this.#graceMs = options.readGraceMs ?? 60_000;
    this.#now = options.now ?? Date.now;
    for (const [name, lua] of Object.entries(SCRIPTS)) redis.defineCommand(name, { lua, numberOfKeys: 0 });
    const log = options.log;
    this.#log = log;
    this.#timer = setInterval(() => {
      // A failed sweep is retried next time; callers see Redis failures through their own calls.
      this.sweep().catch((err: Error) => log?.('warn', 'kv: sweeping expired keys failed; retried next interval', { store: 'redis', err: err.message }));
    }, options.sweepIntervalMs ?? 60_000).unref();
    // The connection's ups and downs, once each: ioredis emits an error per reconnect attempt.
    let down = false;
    redis.on('error', (err: Error & { code?: string }) => {
      if (down) return;
      down = true;
      log?.('error', 'kv: lost the Redis connection; KV calls fail with KV_STORE_UNAVAILABLE until it is back', { store: 'redis', err: err.code ?? err.message });
    });
    redis.on('ready', () => {
      if (!down) return;
      down = false;
      log?.('info', 'kv: Redis connection back', { store: 'redis' });
    });
  }

  /**
   * Connects to `redis://`, `rediss://` (TLS) or `redis+unix:///path?db=N` URLs or a socket path,
   * rejecting with KV_STORE_UNAVAILABLE if Redis does not answer within the connect timeout.
   * Once connected, commands fail at once while the connection is down (no offline queue) and
   * the client reconnects in the background.
   */
  static async connect(spec: string, options: RedisKvStoreOptions = {}): Promise<RedisKvStore> {
    const redis = new Redis({
      ...connectionOptions(spec),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A resent APPEND would append twice: fail in-flight commands instead.
      autoResendUnfulfilledCommands: false,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      commandTimeout: options.commandTimeoutMs ?? 5000,
      retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    });
    // Errors reach callers as rejections; without a listener ioredis would print each one to
    // the console. Until connected they are connect()'s to report; after, the store's (below).
    const early = (): void => undefined;
    redis.on('error', early);
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw storeError(err);
    }
    const store = new RedisKvStore(redis, options);
    redis.off('error', early);
    return store;
  }

  async get(namespace: string, key: string): Promise<KvEntry | null> {
    const ns = this.#ns(namespace);
    const [id, size, expiration, metadata] = await call(this.#redis.hmget(`${ns}e:${key}`, 'v', 's', 'x', 'm'));
    if (id == null || size == null || this.#expired(expiration)) return null;
    return {
      size: Number(size),
      ...(expiration != null && { expiration: Number(expiration) }),
      ...(metadata != null && { metadata }),
      chunks: () => this.#chunks(`${ns}v:${id}`, Number(size)),
    };
  }

  async put(namespace: string, key: string, value: AsyncIterable<Uint8Array>, options: KvPutOptions): Promise<void> {
    const ns = this.#ns(namespace);
    const id = randomBytes(12).toString('base64url');
    const valueKey = `${ns}v:${id}`;
    let size = 0;
    try {
      for await (const chunk of value) {
        if (chunk.byteLength === 0) continue;
        if (size + chunk.byteLength > options.maxValueBytes) {
          throw new DcdnError('KV_VALUE_TOO_LARGE', `the value is larger than ${options.maxValueBytes} bytes`);
        }
        const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        // The first write sets a TTL so a put abandoned by a crash cleans itself up.
        if (size === 0) await call(this.#redis.set(valueKey, bytes, 'PX', UNFINISHED_TTL_MS));
        else await call(this.#redis.append(valueKey, bytes));
        size += chunk.byteLength;
      }
      const { expiration } = options;
      const expires = expiration === undefined ? ['', '', ''] : [expiration, expiration * 1000, expiration * 1000 + this.#graceMs].map(String);
      await call(this.#redis.dcdnKvPut(ns, key, id, String(size), ...expires, options.metadata ?? '', String(this.#graceMs), namespace, this.#expiringKey()));
    } catch (err) {
      // Best effort: if Redis is gone, the TTL set on the first write reclaims the key.
      if (size > 0) {
        this.#redis.del(valueKey).catch((e: Error) => this.#log?.('warn', 'kv: could not remove the value of a failed put; its TTL will', { store: 'redis', err: e.message }));
      }
      throw err;
    }
  }

  async delete(namespace: string, key: string): Promise<void> {
    await call(this.#redis.dcdnKvDelete(this.#ns(namespace), key, String(this.#graceMs)));
  }

  async list(namespace: string, options: KvListOptions): Promise<KvListResult> {
    const prefix = Buffer.from(options.prefix, 'utf8');
    let from = prefix;
    if (options.cursor !== undefined) {
      // The least key after the cursor's is the cursor's followed by a zero byte.
      const after = Buffer.concat([decodeCursor(options.cursor), ZERO]);
      if (Buffer.compare(after, from) > 0) from = after;
    }
    const reply = await call(
      this.#redis.dcdnKvList(
        this.#ns(namespace),
        Buffer.concat([INCLUSIVE, from]),
        Buffer.concat([EXCLUSIVE, prefixEnd(prefix)]),
        String(options.limit),
        String(this.#now()),
        String(LIST_SCAN_CAP),
      ),
    );
    const [more, lastScanned, ...flat] = reply.map(String);
    const found: KvListResult['keys'] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const [name, expiration, metadata] = [flat[i]!, flat[i + 1]!, flat[i + 2]!];
      found.push({ name, ...(expiration !== '' && { expiration: Number(expiration) }), ...(metadata !== '' && { metadata }) });
    }
    const keys = found.slice(0, options.limit);
    const last = keys.at(-1);
    if (found.length > options.limit && last) return { keys, listComplete: false, cursor: encodeCursor(last.name) };
    // The script stopped early, after walking past many expired keys: resume after those.
    if (more === '1' && lastScanned) return { keys, listComplete: false, cursor: encodeCursor(lastScanned) };
    return { keys, listComplete: true };
  }

  async count(namespace: string): Promise<number> {
    return call(this.#redis.dcdnKvCount(this.#ns(namespace), String(this.#now())));
  }

  async dropNamespace(namespace: string): Promise<void> {
    const args = [this.#ns(namespace), namespace, this.#expiringKey(), String(this.#graceMs), String(BATCH)] as const;
    while ((await call(this.#redis.dcdnKvDrop(...args))) === BATCH);
  }

  /**
   * Removes expired entries from the indexes of every namespace that has some due. Redis's own
   * key expiry already frees their values; this keeps `i` and `x` from growing. Runs on a timer
   * on every node (it is idempotent); callable directly.
   */
  async sweep(): Promise<void> {
    const now = String(this.#now());
    const due = await call(this.#redis.zrangebyscore(this.#expiringKey(), '-inf', now, 'LIMIT', 0, 100));
    for (const namespace of due) {
      const args = [this.#ns(namespace), namespace, this.#expiringKey(), now, String(this.#graceMs), String(BATCH)] as const;
      while ((await call(this.#redis.dcdnKvSweep(...args))) === BATCH);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#redis.status === 'ready') await this.#redis.quit().catch(() => this.#redis.disconnect());
    else this.#redis.disconnect();
  }

  /** Reads a value in 64 KiB GETRANGE steps, so only one chunk is in memory at a time. */
  async *#chunks(valueKey: string, size: number): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < size; at += CHUNK_BYTES) {
      const end = Math.min(at + CHUNK_BYTES, size);
      const bytes = await call(this.#redis.getrangeBuffer(valueKey, at, end - 1));
      if (bytes.byteLength !== end - at) {
        throw new DcdnError('KV_STORE_UNAVAILABLE', 'the value was reclaimed while being read: reading took longer than readGraceMs');
      }
      yield bytes;
    }
  }

  #ns(namespace: string): string {
    return `${this.#prefix}${Buffer.byteLength(namespace)}:${namespace}:`;
  }

  #expiringKey(): string {
    return `${this.#prefix}expiring`;
  }

  #expired(expiration: string | null | undefined): boolean {
    return expiration != null && Number(expiration) * 1000 <= this.#now();
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    dcdnKvPut(...args: string[]): Result<number, Context>;
    dcdnKvDelete(...args: string[]): Result<number, Context>;
    dcdnKvList(...args: Array<string | Buffer>): Result<Array<string | number>, Context>;
    dcdnKvCount(...args: string[]): Result<number, Context>;
    dcdnKvSweep(...args: string[]): Result<number, Context>;
    dcdnKvDrop(...args: string[]): Result<number, Context>;
  }
}

// Ends an entry: removes it from the indexes and gives its value key at most `grace` ms to live,
// so a reader that already has the value id can finish.
const DROP_ENTRY = `
local function drop(ns, key, grace)
  local e = ns .. 'e:' .. key
  local id = redis.call('HGET', e, 'v')
  if id then
    local v = ns .. 'v:' .. id
    local ttl = redis.call('PTTL', v)
    if ttl == -1 or ttl > grace then redis.call('PEXPIRE', v, grace) end
  end
  redis.call('DEL', e)
  redis.call('ZREM', ns .. 'i', key)
  redis.call('ZREM', ns .. 'x', key)
end
`;

// Each script takes the namespace prefix first. Values travel as strings ('' for none); a
// missing value key is an empty value.
const SCRIPTS = {
  // ns, key, id, size, expiration s, expiration ms, reclaim at ms, metadata, grace, name, expiring
  dcdnKvPut: `${DROP_ENTRY}
local ns, key, id, size = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local v = ns .. 'v:' .. id
if size > 0 and redis.call('STRLEN', v) ~= size then
  return redis.error_reply('ERR the value being stored expired before it was committed')
end
drop(ns, key, tonumber(ARGV[9]))
local e = ns .. 'e:' .. key
local fields = { 'v', id, 's', ARGV[4] }
if ARGV[5] ~= '' then table.insert(fields, 'x'); table.insert(fields, ARGV[5]) end
if ARGV[8] ~= '' then table.insert(fields, 'm'); table.insert(fields, ARGV[8]) end
redis.call('HSET', e, unpack(fields))
redis.call('ZADD', ns .. 'i', 0, key)
if ARGV[5] ~= '' then
  redis.call('ZADD', ns .. 'x', ARGV[6], key)
  redis.call('ZADD', ARGV[11], 'LT', ARGV[6], ARGV[10])
  redis.call('PEXPIREAT', e, ARGV[7])
  if size > 0 then redis.call('PEXPIREAT', v, ARGV[7]) end
elseif size > 0 then
  redis.call('PERSIST', v)
end
return 1`,
  // ns, key, grace
  dcdnKvDelete: `${DROP_ENTRY}
drop(ARGV[1], ARGV[2], tonumber(ARGV[3]))
return 1`,
  // ns, min, max, limit, now ms, scan cap. Returns {more, last key walked, then name, x, m per
  // live key}: up to limit + 1 live keys, so the caller knows whether more follow.
  dcdnKvList: `
local ns, max, want, now, cap = ARGV[1], ARGV[3], tonumber(ARGV[4]) + 1, tonumber(ARGV[5]), tonumber(ARGV[6])
local min, out, found, walked, last = ARGV[2], { 1, '' }, 0, 0, ''
while found < want and walked < cap do
  local batch = redis.call('ZRANGEBYLEX', ns .. 'i', min, max, 'LIMIT', 0, want)
  for _, key in ipairs(batch) do
    walked = walked + 1
    last = key
    local f = redis.call('HMGET', ns .. 'e:' .. key, 'v', 'x', 'm')
    if f[1] and (not f[2] or tonumber(f[2]) * 1000 > now) then
      table.insert(out, key); table.insert(out, f[2] or ''); table.insert(out, f[3] or '')
      found = found + 1
      if found == want then break end
    end
  end
  if #batch < want then out[1] = 0; break end
  min = '(' .. last
end
out[2] = last
return out`,
  // ns, now ms
  dcdnKvCount: `
return redis.call('ZCARD', ARGV[1] .. 'i') - redis.call('ZCOUNT', ARGV[1] .. 'x', '-inf', ARGV[2])`,
  // ns, name, expiring, now ms, grace, batch
  dcdnKvSweep: `${DROP_ENTRY}
local ns = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', ns .. 'x', '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[6]))
for _, key in ipairs(due) do drop(ns, key, tonumber(ARGV[5])) end
local first = redis.call('ZRANGE', ns .. 'x', 0, 0, 'WITHSCORES')
if first[2] then redis.call('ZADD', ARGV[3], first[2], ARGV[2]) else redis.call('ZREM', ARGV[3], ARGV[2]) end
return #due`,
  // ns, name, expiring, grace, batch
  dcdnKvDrop: `${DROP_ENTRY}
local ns, batch = ARGV[1], tonumber(ARGV[5])
local keys = redis.call('ZRANGE', ns .. 'i', 0, batch - 1)
for _, key in ipairs(keys) do drop(ns, key, tonumber(ARGV[4])) end
if #keys < batch then
  redis.call('DEL', ns .. 'i', ns .. 'x')
  redis.call('ZREM', ARGV[3], ARGV[2])
end
return #keys`,
};

/** ioredis options for a URL or socket path (the parser is shared with signaling's cluster coordination). */
function connectionOptions(spec: string): RedisOptions {
  try {
    return parseRedisUrl(spec);
  } catch (err) {
    throw new DcdnError('KV_STORE_UNAVAILABLE', (err as Error).message);
  }
}

const ZERO = Buffer.from([0]);
const INCLUSIVE = Buffer.from('[');
const EXCLUSIVE = Buffer.from('(');





/** Awaits a Redis command, turning its failures (connection lost, timeout, error reply) into KV_STORE_UNAVAILABLE. */
async function call<T>(command: Promise<T>): Promise<T> {
  try {
    return await command;
  } catch (err) {
    throw storeError(err);
  }
}

function storeError(err: unknown): unknown {
  if (errorCodeOf(err)) return err;
  return new DcdnError('KV_STORE_UNAVAILABLE', `Redis: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
