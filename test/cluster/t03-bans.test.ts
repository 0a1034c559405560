/**
 * T3 (SCALE-OUT §4.3): bans and limits hold cluster-wide. A ban through s1 of a host on s2 cuts
 * it off within 2 s everywhere and keeps it out of both nodes; the volunteers-per-address cap
 * and the open-join rate count across nodes, not per node.
 */
import { afterAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { volunteerScope } from '../../protocol/index.ts';
import { mintToken } from '../../signaling/index.ts';
import { waitFor } from './cluster-api.ts';
import { httpCall } from './http-call.ts';
import { clusterScenario, tryHello } from './scenario.ts';
import { defaultSpec, SECRET } from './topology.ts';

/** The bound for a ban to cut a host off, at signaling and at every ingress. */
const BAN_MS = 2000;
/** Signaling's default cap of volunteers per address, and the open-join burst (hosts-api.ts). */
const VOLUNTEERS_PER_ADDRESS = 8;
const OPEN_JOIN_BURST = 5;

const opened: WebSocket[] = [];
afterAll(() => opened.forEach((ws) => ws.terminate()));

clusterScenario(
  'T3: bans and limits across nodes',
  () => defaultSpec({ signaling: [{ nodeId: 's1', region: 'home', extra: ['--open-join'] }, { nodeId: 's2', region: 'home', extra: ['--open-join'] }] }),
  (cluster) => {
    it('a ban through s1 of a host on s2 disconnects it and ends its sessions everywhere within 2 s', async () => {
      const c = cluster();
      await c.untilAttached(2);
      const health = await c.health(0);
      const target = health?.peers.find((p) => p.role === 'host' && p.info?.name === 'h2-3');
      expect(target?.node, 'h2-3 is on s2 in s1\'s view').toBe('s2');
      const host = c.hosts.hosts.get('h2-3')!;
      const r = await c.dcdnVia(0, 'hosts', 'ban', target!.id, '--reason', 'cluster test');
      const bannedAt = Date.now();
      expect(r.code, r.stderr).toBe(0);
      await waitFor(async () => !host.client.connected, BAN_MS, () => 'the banned host on s2 is still connected to signaling (cluster-wide bans, deliverable 2)', 20);
      await waitFor(
        async () => {
          const attached = await c.attachments();
          return [...attached.values()].every((hosts) => !hosts.includes('h2-3'));
        },
        BAN_MS - (Date.now() - bannedAt) + 250,
        () => 'an ingress still has a session with the banned host',
        50,
      );
    });

    it('keeps the banned host out of both nodes: 10 reconnects, 0 admitted', async () => {
      const c = cluster();
      const token = mintToken(SECRET, { role: 'host', sub: 'h2-3', ttlSeconds: 600 });
      const outcomes: string[] = [];
      for (let i = 0; i < 10; i++) {
        const node = c.signals[i % 2]!;
        outcomes.push(await tryHello(`${node.url.replace('http', 'ws')}/v1/signal`, token, { hostId: 'h2-3', name: 'h2-3' }, 3000));
      }
      expect(outcomes.filter((o) => o === 'welcomed')).toEqual([]);
    });

    it(`admits exactly ${VOLUNTEERS_PER_ADDRESS} of 12 volunteers from one address alternating s1 and s2`, async () => {
      const c = cluster();
      let welcomed = 0;
      for (let i = 0; i < 12; i++) {
        const node = c.signals[i % 2]!;
        const token = mintToken(SECRET, { role: 'host', sub: `vol-${i}`, ttlSeconds: 600, scope: volunteerScope() });
        const u = new URL(`${node.url.replace('http', 'ws')}/v1/signal`);
        u.searchParams.set('token', token);
        const ws = new WebSocket(u);
        opened.push(ws);
        const outcome = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('silent'), 3000);
          ws.on('unexpected-response', (_q, res) => (clearTimeout(timer), resolve(`refused ${res.statusCode}`)));
          ws.on('error', () => (clearTimeout(timer), resolve('error')));
          ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', info: { hostId: `vol-${i}`, name: `vol-${i}` } })));
          ws.on('message', (d) => {
            const m = JSON.parse(String(d)) as { type: string };
            if (m.type === 'welcome') (clearTimeout(timer), resolve('welcomed'));
            if (m.type === 'error') (clearTimeout(timer), resolve('error'));
          });
        });
        if (outcome === 'welcomed') welcomed++;
      }
      expect(welcomed, 'the volunteers-per-address cap must count across nodes (deliverable 2)').toBe(VOLUNTEERS_PER_ADDRESS);
    });

    it(`hands out ${OPEN_JOIN_BURST} tokens for 20 open joins alternating s1 and s2`, async () => {
      const c = cluster();
      let tokens = 0;
      for (let i = 0; i < 20; i++) {
        const r = await httpCall(`${c.signals[i % 2]!.url}/v1/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        if (r.status === 200) tokens++;
      }
      expect(tokens, 'the open-join rate must be cluster-wide (deliverable 2)').toBe(OPEN_JOIN_BURST);
    });
  },
);
