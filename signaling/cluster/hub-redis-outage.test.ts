/**
 * Cluster scenario T7 in small: two signaling servers on one real Redis, default timings. Redis is
 * frozen (SIGSTOP) long enough for every node lease to run out by Redis's clock; a host joins node A
 * meanwhile (island mode). Once Redis is back (SIGCONT), node B must list that host within the
 * design bound (7 s, docs/cluster.md "Presence and relay").
 */
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRedisUrl } from '../../protocol/index.ts';
import { startRedis, type RedisServer } from '../../tools/redis.ts';
import { createSignalingServer, type SignalingServer } from '../server.ts';
import { TEST_SECRET, TestPeer } from './test-peer.ts';

const HAVE_REDIS_PARTS = existsSync(new URL('./redis.ts', import.meta.url));
const FREEZE_MS = Number(process.env.DCDN_T7_FREEZE_MS ?? 12_000);
const CONVERGE_MS = 7000;

describe.skipIf(!HAVE_REDIS_PARTS)('two signaling nodes through a Redis freeze', () => {
  let redis: RedisServer;
  let stopped: number | null = null;
  const servers: SignalingServer[] = [];
  const peers: TestPeer[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    if (stopped !== null) process.kill(stopped, 'SIGCONT');
    for (const p of peers) p.close();
    await Promise.all(servers.map((s) => s.close()));
    await redis?.stop();
  });

  async function node(nodeId: string): Promise<{ http: string; ws: string }> {
    const server = createSignalingServer({ secret: TEST_SECRET, cluster: { url: redis.url, clusterName: 't7', nodeId, region: 'eu' }, ...(process.env.DCDN_T7_LOG ? { logger: { level: 'info', base: { nodeId } } } : {}) });
    servers.push(server);
    const http = await server.listen(0);
    await until(async () => (await fetch(`${http}/v1/health`)).status === 200);
    return { http, ws: `${http.replace(/^http/, 'ws')}/v1/signal` };
  }
  const hosts = async (http: string) => ((await (await fetch(`${http}/v1/health`)).json()) as { hosts: number }).hosts;

  it('lists a host that joined node A while Redis was frozen on node B within 7 s of Redis being back', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const [h1] = await TestPeer.join(a.ws, 'host', { hostId: 'tab-1', name: 'one' });
    peers.push(h1);
    await until(async () => (await hosts(b.http)) === 1);

    const raw = new Redis(parseRedisUrl(redis.url));
    const pid = Number(/process_id:(\d+)/.exec(await raw.info('server'))![1]);
    raw.disconnect();
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    await sleep(1000);
    const [island] = await TestPeer.join(a.ws, 'host', { hostId: 'tab-island', name: 'island' });
    peers.push(island);
    expect(await hosts(a.http)).toBe(2);
    await sleep(FREEZE_MS);
    process.kill(pid, 'SIGCONT');
    stopped = null;
    const back = Date.now();
    await until(async () => (await hosts(b.http)) === 2 && (await hosts(a.http)) === 2, 15_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}: hosts a=${await hosts(a.http)} b=${await hosts(b.http)}`);
    });
    const took = Date.now() - back;
    if (process.env.DCDN_T7_LOG) console.log('converged after', took);
    // Stays converged (no late janitor sweep or node-lost hiding).
    await sleep(3000);
    expect([await hosts(a.http), await hosts(b.http)]).toEqual([2, 2]);
    expect(took).toBeLessThan(CONVERGE_MS);
  }, 90_000);
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(50);
  }
}
