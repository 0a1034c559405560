/**
 * Two real signaling servers on one real Redis (tools/redis.ts): a host on node A and an
 * ingress on node B see each other and their signals are relayed through the Redis bus. Runs
 * once the Redis cluster parts (cluster/redis.ts) are in the tree.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../tools/redis.ts';
import { createSignalingServer, type SignalingServer } from '../server.ts';
import { TEST_SECRET, TestPeer } from './test-peer.ts';

const HAVE_REDIS_PARTS = existsSync(new URL('./redis.ts', import.meta.url));

describe.skipIf(!HAVE_REDIS_PARTS)('two signaling nodes on a real Redis', () => {
  let redis: RedisServer;
  const servers: SignalingServer[] = [];
  const peers: TestPeer[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const p of peers) p.close();
    await Promise.all(servers.map((s) => s.close()));
    await redis?.stop();
  });

  async function node(nodeId: string, clusterName: string, region: string): Promise<{ http: string; ws: string }> {
    const server = createSignalingServer({ secret: TEST_SECRET, cluster: { url: redis.url, clusterName, nodeId, region } });
    servers.push(server);
    const http = await server.listen(0);
    await until(async () => (await fetch(`${http}/v1/health`)).status === 200);
    return { http, ws: `${http.replace(/^http/, 'ws')}/v1/signal` };
  }

  it('shows a host on node A to an ingress on node B and relays their signals both ways; the newest host id wins across nodes', async () => {
    const a = await node('node-a', 'relay', 'eu');
    const b = await node('node-b', 'relay', 'us');
    const [host, hostWelcome] = await TestPeer.join(a.ws, 'host', { hostId: 'tab-r', name: 'r' });
    peers.push(host);
    await until(async () => ((await (await fetch(`${b.http}/v1/health`)).json()) as { hosts: number }).hosts === 1);
    const [ingress, ingressWelcome] = await TestPeer.join(b.ws, 'ingress', { name: 'in-b' });
    peers.push(ingress);
    expect(ingressWelcome.peers).toMatchObject([{ id: hostWelcome.id, node: 'node-a', region: 'eu' }]);
    expect((await host.next('join')).peer).toMatchObject({ id: ingressWelcome.id, node: 'node-b' });
    ingress.send({ type: 'signal', to: hostWelcome.id, data: { kind: 'offer', sdp: 'o' } });
    expect(await host.next('signal')).toEqual({ type: 'signal', from: ingressWelcome.id, data: { kind: 'offer', sdp: 'o' } });
    host.send({ type: 'signal', to: ingressWelcome.id, data: { kind: 'answer', sdp: 'a' } });
    expect(await ingress.next('signal')).toEqual({ type: 'signal', from: hostWelcome.id, data: { kind: 'answer', sdp: 'a' } });

    // The tab reconnects through node B: node A closes the old connection.
    const [moved, movedWelcome] = await TestPeer.join(b.ws, 'host', { hostId: 'tab-r', name: 'r' });
    peers.push(moved);
    expect(await host.next('error', 10_000)).toMatchObject({ code: 'SIG_DUPLICATE_PEER' });
    expect((await ingress.next('join')).peer.id).toBe(movedWelcome.id);
    expect(await ingress.next('leave', 10_000)).toEqual({ type: 'leave', id: hostWelcome.id, reason: 'replaced' });
  }, 60_000);
});

async function until(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
