import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../tools/redis.ts';
import { connectRedisCluster } from './redis.ts';
import { PresenceUnavailableError, type BusMessage, type ClusterParts } from './types.ts';

// A real redis-server for this file (tools/redis.ts); each test under a cluster name of its own.
let server: RedisServer;
let raw: Redis;
let clusters = 0;
const opened: ClusterParts[] = [];

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis({ path: server.socket });
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  raw?.disconnect();
  await server?.stop();
});

async function nodes(...ids: string[]): Promise<ClusterParts[]> {
  const clusterName = `b${++clusters}`;
  const parts = await Promise.all(ids.map((nodeId) => connectRedisCluster({ url: server.url, clusterName, nodeId, region: 'r1', timings: { blockMs: 1000 } })));
  opened.push(...parts);
  return parts;
}

const signal = (n: number): BusMessage => ({ v: 1, t: 'signal', from: 'ingress-1', to: 'host-1', data: { n } });

/** Resolves once `count` messages arrived; `onEach` sees each one as it comes. */
function receive(parts: ClusterParts, count: number, onEach: (m: BusMessage, from: string, i: number) => void = () => undefined) {
  const got: Array<{ m: BusMessage; from: string }> = [];
  const done = new Promise<void>((resolve) => {
    parts.bus.onMessage((m, from) => {
      got.push({ m, from });
      onEach(m, from, got.length);
      if (got.length === count) resolve();
    });
  });
  return { got, done };
}

describe('RedisBus', () => {
  it('delivers 10 000 messages between two nodes in order, losing none when the reader connection is killed', async () => {
    const [a, b] = await nodes('a', 'b');
    const total = 10_000;
    let killed = false;
    const kill = async () => {
      // The loss experiment of SCALE-OUT appendix A: the receiver's connection dies mid-stream.
      const list = await raw.client('LIST');
      const id = /id=(\d+) [^\n]*name=dcdn:b:reader/.exec(String(list))![1];
      await raw.client('KILL', 'ID', id!);
      killed = true;
    };
    let killing: Promise<void> | undefined;
    const inbox = receive(b!, total, (_m, _from, i) => {
      if (i === 1000) killing = kill();
    });
    for (let i = 0; i < total; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => a!.bus.send('b', signal(i + j))));
    }
    await inbox.done;
    await killing;
    expect(killed).toBe(true);
    expect(inbox.got.map((g) => (g.m as { data: { n: number } }).data.n)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(new Set(inbox.got.map((g) => g.from))).toEqual(new Set(['a']));
  });

  it('keeps each pair in order when both nodes send to each other at once', async () => {
    const [a, b] = await nodes('a', 'b');
    const atA = receive(a!, 500);
    const atB = receive(b!, 500);
    await Promise.all(Array.from({ length: 500 }, (_, i) => [a!.bus.send('b', signal(i)), b!.bus.send('a', signal(i))]).flat());
    await Promise.all([atA.done, atB.done]);
    for (const side of [atA, atB]) expect(side.got.map((g) => (g.m as { data: { n: number } }).data.n)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('rejects a send to a node that is not live, and to a node that closed', async () => {
    const [a, b] = await nodes('a', 'b');
    await expect(a!.bus.send('nobody', signal(0))).rejects.toBeInstanceOf(PresenceUnavailableError);
    await b!.close();
    await expect(a!.bus.send('b', signal(1))).rejects.toBeInstanceOf(PresenceUnavailableError);
  });

  it("wakes the reader blocked on the inbox when a presence tail starts, so the tail's events come at once", async () => {
    // A block far longer than the wait for the event: only the wake-up can deliver it in time.
    const clusterName = `b${++clusters}`;
    const [a, b] = await Promise.all(['a', 'b'].map((nodeId) => connectRedisCluster({ url: server.url, clusterName, nodeId, region: 'r1', timings: { blockMs: 60_000 } })));
    opened.push(a!, b!);
    const inbox = receive(b!, 1);
    await a!.bus.send('b', signal(1));
    await inbox.done; // b's reader is now blocked on its inbox alone
    const snap = await b!.presence.snapshot();
    const joined = new Promise((resolve) => b!.presence.tail(snap.cursor, (e) => resolve(e.t), () => undefined));
    await a!.presence.register({ key: 'h:w', node: 'a', region: 'r1', peer: { id: 'p', role: 'host', info: {}, since: 0 }, address: '192.0.2.1' }, {});
    expect(await joined).toBe('join');
  }, 20_000);

  it('skips messages of a version or type it does not know', async () => {
    const [a, b] = await nodes('a', 'b');
    const inbox = receive(b!, 1);
    await raw.xadd(`dcdn:{b${clusters}}:inbox:b`, '*', 'f', 'a', 'm', JSON.stringify({ v: 2, t: 'signal' }));
    await raw.xadd(`dcdn:{b${clusters}}:inbox:b`, '*', 'f', 'a', 'm', JSON.stringify({ v: 1, t: 'gossip' }));
    await raw.xadd(`dcdn:{b${clusters}}:inbox:b`, '*', 'f', 'a', 'm', 'not json');
    await a!.bus.send('b', signal(7));
    await inbox.done;
    expect(inbox.got).toEqual([{ m: signal(7), from: 'a' }]);
  });
});
