import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../tools/redis.ts';
import { entry, presenceSuite, WAIT_MS, watch } from '../../test/presence-suite.ts';
import { RedisPresence } from './redis-presence.ts';
import type { RedisClusterTimings } from './redis-link.ts';
import { PresenceUnavailableError, type PresenceStore } from './types.ts';

// A real redis-server for this file (tools/redis.ts), each test under a cluster name of its own.
let server: RedisServer;
let raw: Redis;
let clusters = 0;

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis({ path: server.socket });
});

afterAll(async () => {
  raw?.disconnect();
  await server?.stop();
});

/** Short leases so the janitor's bounds are reached in about a second (ten beats per lease: the machine is busy). */
const FAST: Partial<RedisClusterTimings> = {
  heartbeatIntervalMs: 100,
  nodeLeaseMs: 1000,
  janitorIntervalMs: 100,
  entryLeaseMs: 10_000,
  blockMs: 1000,
};
/** Polls a condition that no event announces (a lease running out with no janitor), bounded by WAIT_MS. */
async function until(ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A frozen node's heartbeat never comes again. */
const NEVER = 3_600_000;

function harness(timings: Partial<RedisClusterTimings> = FAST) {
  const clusterName = `t${++clusters}`;
  const opened: PresenceStore[] = [];
  return {
    clusterName,
    multiNode: true,
    leases: true,
    flush: async () => {
      await raw.flushall();
    },
    async open(node: { nodeId: string; region?: string; frozen?: boolean; shortEntryLease?: boolean }) {
      const store = await RedisPresence.connect({
        url: server.url,
        clusterName,
        nodeId: node.nodeId,
        region: node.region ?? 'r1',
        timings: {
          ...timings,
          ...(node.frozen && { heartbeatIntervalMs: NEVER }),
          ...(node.shortEntryLease && { entryLeaseMs: 300 }),
        },
      });
      opened.push(store);
      return store;
    },
    async close() {
      await Promise.all(opened.map((s) => s.close()));
    },
  };
}

presenceSuite('RedisPresence', async () => harness());

describe('RedisPresence on one Redis shared by two nodes', () => {
  let h: ReturnType<typeof harness> | undefined;
  let stopped: number | null = null;
  afterEach(async () => {
    if (stopped !== null) process.kill(stopped, 'SIGCONT');
    stopped = null;
    await h?.close();
    h = undefined;
  });

  it("shows a join on A in B's tail, and B sees A's peers leave (node-lost) when A stops heartbeating", async () => {
    h = harness();
    const a = await h.open({ nodeId: 'a' });
    const b = await h.open({ nodeId: 'b' });
    const w = watch(b, (await b.snapshot()).cursor);
    const { epoch } = await a.register(entry('h:x', 'a'), {});
    await w.event('join from a', (e) => e.t === 'join' && e.entry.node === 'a' && e.entry.epoch === epoch);
    // close() stops the heartbeat without unregistering: what a killed node leaves behind.
    await a.close();
    const leave = await w.event('leave node-lost', (e) => e.t === 'leave' && e.key === 'h:x');
    expect(leave).toMatchObject({ node: 'a', reason: 'node-lost', epoch });
    expect((await b.nodes()).map((n) => n.id)).toEqual(['b']);
    w.stop();
  });

  it('keeps the keys of a dead node to the prefix: nothing of it is left after the janitor', async () => {
    h = harness();
    const b = await h.open({ nodeId: 'b' });
    const w = watch(b, (await b.snapshot()).cursor);
    const a = await h.open({ nodeId: 'a', frozen: true });
    for (let i = 0; i < 3; i++) await a.register(entry(`h:${i}`, 'a', { peer: { id: `p${i}`, role: 'host', info: {}, since: 0, volunteer: true } }), { volunteerCap: 8 });
    for (let i = 0; i < 3; i++) await w.event(`leave h:${i}`, (e) => e.t === 'leave' && e.key === `h:${i}`);
    const keys = (await raw.keys(`dcdn:{${h.clusterName}}:*`)).sort();
    // What stays: the generation, the epoch counter, the feed and the live node b with its own keys.
    expect(keys.filter((k) => !/:(gen|epoch|events|nodes|leases|node:b|node:b:keys|inbox:b)$/.test(k) && !/janitor:a$/.test(k))).toEqual([]);
    expect(await raw.zcard(`dcdn:{${h.clusterName}}:leases`)).toBe(0);
    w.stop();
  });

  it('throws PresenceUnavailableError within the timeout while Redis is frozen, and resets the tail when it is back', async () => {
    h = harness({ ...FAST, commandTimeoutMs: 500, blockMs: 500 });
    const a = await h.open({ nodeId: 'a' });
    const w = watch(a, (await a.snapshot()).cursor);
    const pid = Number(/process_id:(\d+)/.exec(await raw.info('server'))![1]);
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    const island = entry('h:island', 'a');
    await expect(a.register(island, {})).rejects.toBeInstanceOf(PresenceUnavailableError);
    await expect(a.renew([], { cv: 0, peers: 0 })).rejects.toBeInstanceOf(PresenceUnavailableError);
    await expect(a.snapshot()).rejects.toBeInstanceOf(PresenceUnavailableError);
    process.kill(pid, 'SIGCONT');
    stopped = null;
    await w.reset();
    // Back: the island's peer is reclaimed with a fresh epoch (even though the register that
    // timed out on the client may have run in Redis after all).
    expect(await a.reclaim(island)).not.toBeNull();
  });

  it('renews and reaps in batches: every key of a batch boundary is counted once', async () => {
    h = harness({ ...FAST, batch: 100 });
    const b = await h.open({ nodeId: 'b' });
    const w = watch(b, (await b.snapshot()).cursor);
    const a = await h.open({ nodeId: 'a' });
    const own = await Promise.all(Array.from({ length: 250 }, (_, i) => a.register(entry(`h:${i}`, 'a'), {}).then(({ epoch }) => ({ key: `h:${i}`, epoch }))));
    // One key of the last batch moves to b: a's renew reports it fenced, the rest current.
    const moved = await b.register(entry('h:249', 'b'), {});
    const renewed = await a.renew([...own, { key: 'h:none', epoch: 1 }], { cv: 0, peers: 250 });
    expect(renewed).toEqual({ fenced: ['h:249'], missing: ['h:none'], genChanged: false });
    // a goes without unregistering: its 249 remaining entries go in three reaping batches.
    await a.close();
    await w.event('last leave', () => w.events.filter((e) => e.t === 'leave' && e.reason === 'node-lost').length === 249);
    expect((await b.snapshot()).entries.map((e) => [e.key, e.epoch])).toEqual([['h:249', moved.epoch]]);
    w.stop();
  });

  it('lets a reclaim take a key whose holder is on a node that died, before any janitor ran', async () => {
    h = harness({ ...FAST, janitorIntervalMs: NEVER });
    const b = await h.open({ nodeId: 'b' });
    const a = await h.open({ nodeId: 'a', frozen: true });
    await a.register(entry('h:m', 'a'), {});
    expect(await b.reclaim(entry('h:m', 'b'))).toBeNull();
    // a's lease runs out (no janitor removes its entry): nodes() stops listing it.
    await until(async () => !(await b.nodes()).some((n) => n.id === 'a'));
    const got = await b.reclaim(entry('h:m', 'b'));
    expect((await b.snapshot()).entries.map((e) => [e.node, e.epoch])).toEqual([['b', got!.epoch]]);
  });

  it('adopts a new dataset generation on register too, resetting the tail', async () => {
    h = harness();
    const a = await h.open({ nodeId: 'a' });
    const w = watch(a, (await a.snapshot()).cursor);
    await raw.flushall();
    const { epoch } = await a.register(entry('h:n', 'a'), {});
    await w.reset();
    expect((await a.snapshot()).entries.map((e) => e.epoch)).toEqual([epoch]);
    expect((await a.nodes()).map((n) => n.id)).toEqual(['a']);
    expect(await a.renew([{ key: 'h:n', epoch }], { cv: 0, peers: 1 })).toEqual({ fenced: [], missing: [], genChanged: true });
  });

  it('resets a tail whose cursor the events stream has trimmed past', async () => {
    h = harness({ ...FAST, eventsMaxLen: 10 });
    const a = await h.open({ nodeId: 'a' });
    const old = await a.snapshot();
    // XADD MAXLEN ~ trims whole radix nodes (100 entries by default): write past a few of them.
    for (let i = 0; i < 400; i++) await a.register(entry(`h:${i % 5}`, 'a'), {});
    const w = watch(a, old.cursor);
    await w.reset();
    w.stop();
  });
});
