import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../tools/redis.ts';
import { connectRedisCluster } from './redis.ts';
import { PresenceUnavailableError, type ClusterParts } from './types.ts';

let server: RedisServer;
let raw: Redis;
let clusters = 0;
let parts: ClusterParts[] = [];
let stopped: number | null = null;
const logs: Array<{ level: string; message: string }> = [];
const logWaiters = new Set<() => void>();
/** Resolves when a log line matching `re` has been written. */
function logged(re: RegExp): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (!logs.some((l) => re.test(l.message))) return;
      logWaiters.delete(check);
      resolve();
    };
    logWaiters.add(check);
    check();
  });
}
function log(level: string, message: string): void {
  logs.push({ level, message });
  for (const w of [...logWaiters]) w();
}

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis({ path: server.socket });
});

afterEach(async () => {
  if (stopped !== null) process.kill(stopped, 'SIGCONT');
  stopped = null;
  await Promise.all(parts.map((p) => p.close()));
  parts = [];
  logs.length = 0;
});

afterAll(async () => {
  raw?.disconnect();
  await server?.stop();
});

async function connect(nodeId = 'a', clusterName = `e${++clusters}`): Promise<ClusterParts> {
  const p = await connectRedisCluster({
    url: server.url,
    clusterName,
    nodeId,
    region: 'r1',
    log,
    timings: { commandTimeoutMs: 500, blockMs: 500 },
  });
  parts.push(p);
  return p;
}

describe('RedisEphemeral', () => {
  it('shares deploy-check candidates between nodes until they expire', async () => {
    const a = await connect('a');
    const b = await connect('b', `e${clusters}`);
    await a.ephemeral.putCandidate('c1', { app: 'echo', code: 'export default {}' }, 60_000);
    expect(await b.ephemeral.getCandidate('c1')).toEqual({ app: 'echo', code: 'export default {}' });
    expect(await b.ephemeral.getCandidate('nope')).toBeNull();
    await a.ephemeral.putCandidate('c2', { app: 'x' }, 1);
    expect(await raw.pttl(`dcdn:{e${clusters}}:check:c2`)).toBeLessThanOrEqual(1);
  });

  it('holds a rate cluster-wide: the burst is shared by every node', async () => {
    const a = await connect('a');
    const b = await connect('b', `e${clusters}`);
    const rate = { perSecond: 1 / 60, burst: 5 };
    const results: boolean[] = [];
    for (let i = 0; i < 10; i++) results.push(await (i % 2 ? b : a).ephemeral.take('join:203.0.113.9', rate));
    expect(results.filter(Boolean)).toHaveLength(5);
    expect(results.slice(5)).toEqual([false, false, false, false, false]);
    expect(await a.ephemeral.take('join:203.0.113.10', rate)).toBe(true);
  });

  it('falls back to a local bucket while Redis is frozen, says so once, and goes back when it answers', async () => {
    const a = await connect('a');
    const rate = { perSecond: 1 / 60, burst: 2 };
    const pid = Number(/process_id:(\d+)/.exec(await raw.info('server'))![1]);
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    // Fail-open per node: the local bucket has its own burst.
    const local = [];
    for (let i = 0; i < 3; i++) local.push(await a.ephemeral.take('join:x', rate));
    expect(local).toEqual([true, true, false]);
    expect(logs.filter((l) => /fall back to this node/.test(l.message))).toHaveLength(1);
    await expect(a.ephemeral.getCandidate('c')).rejects.toBeInstanceOf(PresenceUnavailableError);
    process.kill(pid, 'SIGCONT');
    stopped = null;
    // The heartbeat finds Redis back within a beat; then the shared bucket answers again.
    await logged(/answers again/);
    expect(await a.ephemeral.take('join:x', rate)).toBe(true);
    expect(logs.some((l) => /cluster-wide again/.test(l.message))).toBe(true);
  });
});

describe('connectRedisCluster', () => {
  it("warns when Redis may evict keys (maxmemory-policy is not noeviction)", async () => {
    await raw.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const p = await connect('a');
      expect(p.kind).toBe('redis');
      expect(logs.some((l) => l.level === 'warn' && /noeviction/.test(l.message))).toBe(true);
    } finally {
      await raw.config('SET', 'maxmemory-policy', 'noeviction');
    }
    logs.length = 0;
    await connect('b');
    expect(logs.some((l) => /noeviction/.test(l.message))).toBe(false);
  });

  it('rejects with PresenceUnavailableError when Redis cannot be reached or the URL is not one', async () => {
    await expect(connectRedisCluster({ url: 'redis+unix:///nonexistent/redis.sock', clusterName: 'x', nodeId: 'a', region: 'r' })).rejects.toBeInstanceOf(PresenceUnavailableError);
    await expect(connectRedisCluster({ url: 'http://example.com', clusterName: 'x', nodeId: 'a', region: 'r' })).rejects.toBeInstanceOf(PresenceUnavailableError);
  });

  it('rejects with PresenceUnavailableError, not hangs, when Redis is frozen at start', async () => {
    const pid = Number(/process_id:(\d+)/.exec(await raw.info('server'))![1]);
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    await expect(connectRedisCluster({ url: server.url, clusterName: 'frozen', nodeId: 'a', region: 'r', timings: { connectTimeoutMs: 300, commandTimeoutMs: 300 } })).rejects.toBeInstanceOf(PresenceUnavailableError);
  });

  it('works as an ACL user with only the permissions docs/cluster-redis.md lists', async () => {
    const name = `e${++clusters}`;
    await raw.acl('SETUSER', 'dcdn', 'reset', 'on', '>s3cret', `~dcdn:{*}:*`, '+@read', '+@write', '+@stream', '+@scripting', '+@connection', '+time', '+client|id', '+client|unblock', '+config|get');
    try {
      const url = `redis+unix://${server.socket}?user=dcdn&password=s3cret`;
      const a = await connectRedisCluster({ url, clusterName: name, nodeId: 'a', region: 'r', log, timings: { blockMs: 500 } });
      const b = await connectRedisCluster({ url, clusterName: name, nodeId: 'b', region: 'r', timings: { blockMs: 500 } });
      parts.push(a, b);
      const got = new Promise((resolve) => b.bus.onMessage((m) => resolve(m)));
      const snap = await b.presence.snapshot();
      const joined = new Promise((resolve) => b.presence.tail(snap.cursor, (e) => resolve(e.t), () => undefined));
      await a.presence.register({ key: 'h:acl', node: 'a', region: 'r', peer: { id: 'p', role: 'host', info: {}, since: 0 }, address: '192.0.2.1' }, {});
      expect(await joined).toBe('join');
      await a.bus.send('b', { v: 1, t: 'drain', peer: 'p', draining: true });
      expect(await got).toEqual({ v: 1, t: 'drain', peer: 'p', draining: true });
      expect(await a.ephemeral.take('x', { perSecond: 1, burst: 1 })).toBe(true);
      expect(logs.filter((l) => l.level !== 'info')).toEqual([]);
    } finally {
      await raw.acl('DELUSER', 'dcdn');
    }
  });

  it('logs no warning or error in a normal life, from an empty cluster on', async () => {
    const a = await connect('a');
    const snap = await a.presence.snapshot();
    expect(snap.cursor).toBe('0-0');
    const joined = new Promise((resolve) => a.presence.tail(snap.cursor, (e) => resolve(e.t), () => resolve('reset')));
    const { epoch } = await a.presence.register({ key: 'h:n', node: 'a', region: 'r', peer: { id: 'p', role: 'host', info: {}, since: 0 }, address: '192.0.2.1' }, {});
    expect(await joined).toBe('join');
    expect(await a.presence.renew([{ key: 'h:n', epoch }], { cv: 1, peers: 1 })).toEqual({ fenced: [], missing: [], genChanged: false });
    expect(await a.presence.unregister('h:n', epoch, 'closed')).toBe(true);
    expect(logs).toEqual([]);
  });

  it('lets the first node set the dataset generation and the next adopt it', async () => {
    const a = await connect('a');
    const b = await connect('b', `e${clusters}`);
    const [sa, sb] = await Promise.all([a.presence.snapshot(), b.presence.snapshot()]);
    expect(sa.gen).toBe(sb.gen);
    expect(await raw.get(`dcdn:{e${clusters}}:gen`)).toBe(sa.gen);
  });
});
