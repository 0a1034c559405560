import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../tools/redis.ts';
import { apply, entry } from '../../test/presence-suite.ts';
import { RedisPresence } from './redis-presence.ts';
import type { ClusterEvent, PresenceEntry } from './types.ts';

// Random interleavings of two nodes' writes: a consumer that applies the tail to a snapshot by
// the epoch rules always ends with exactly the store's own final snapshot, from any cursor.
let server: RedisServer;
let a: RedisPresence;
let b: RedisPresence;

beforeAll(async () => {
  server = await startRedis();
  const open = (nodeId: string) => RedisPresence.connect({ url: server.url, clusterName: 'fuzz', nodeId, region: 'r1', timings: { blockMs: 500 } });
  [a, b] = await Promise.all([open('a'), open('b')]);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await server?.stop();
});

type Op = { node: 0 | 1; kind: 'register' | 'reclaim' | 'unregister' | 'update' | 'stale'; key: number };
const op = fc.record({
  node: fc.constantFrom<0 | 1>(0, 1),
  kind: fc.constantFrom<Op['kind']>('register', 'register', 'reclaim', 'unregister', 'update', 'stale'),
  key: fc.integer({ min: 0, max: 3 }),
});

const sorted = (entries: PresenceEntry[]) => [...entries].sort((x, y) => x.key.localeCompare(y.key));

describe('RedisPresence under random interleavings', () => {
  it('rebuilds the final directory from a snapshot and its tail, taken at any point', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 16 }), fc.nat(), async (ops, cut) => {
        const prefix = `r${++run}:`;
        const stores = [a, b] as const;
        const held = new Map<string, number>(); // key -> epoch the writer last got
        let snap = await a.snapshot();
        const at = cut % ops.length;
        for (const [i, o] of ops.entries()) {
          if (i === at) snap = await b.snapshot();
          const key = `h:${prefix}${o.key}`;
          const s = stores[o.node];
          const node = o.node ? 'b' : 'a';
          const epoch = held.get(key) ?? 0;
          if (o.kind === 'register') held.set(key, (await s.register(entry(key, node), {})).epoch);
          else if (o.kind === 'reclaim') {
            const r = await s.reclaim(entry(key, node));
            if (r) held.set(key, r.epoch);
          } else if (o.kind === 'unregister') await s.unregister(key, epoch, 'closed');
          else if (o.kind === 'update') await s.update(key, epoch, { status: [{ name: 'x', version: i, state: 'serving' }] });
          else await s.unregister(key, epoch - 1, 'closed'); // stale: must change nothing
        }
        const final = (await a.snapshot()).entries.filter((e) => e.key.includes(prefix));
        // Tail from the snapshot's cursor up to the stream's last entry now.
        const lastId = (await b.snapshot()).cursor;
        const events: ClusterEvent[] = [];
        await new Promise<void>((resolve) => {
          if (lastId === snap.cursor) return resolve();
          const stop = b.tail(snap.cursor, (e, id) => {
            events.push(e);
            if (id === lastId) stop(), resolve();
          }, () => undefined);
        });
        const dir = new Map(snap.entries.filter((e) => e.key.includes(prefix)).map((e) => [e.key, e]));
        for (const e of events) if ((e.t === 'leave' ? e.key : e.entry.key).includes(prefix)) apply(dir, e);
        expect(sorted([...dir.values()])).toEqual(sorted(final));
      }),
      { numRuns: 40 },
    );
  }, 60_000);
});
