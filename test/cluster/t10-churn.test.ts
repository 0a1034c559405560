/**
 * T10 (SCALE-OUT §4.3): 1000 simulated hosts churning (close, vanish without a close frame, move
 * to the other node under the same id) with s2 killed mid-run. A join is visible on the other
 * node within 1 s (p99); no host ever has two live entries; after every host has gone, nothing
 * of them is left anywhere within 17 s: no leaked presence.
 */
import { expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingClient } from '../../protocol/index.ts';
import { mintToken } from '../../signaling/index.ts';
import { waitFor } from './cluster-api.ts';
import { clusterScenario, hold, percentile, redisCli, redisKeys } from './scenario.ts';
import { SimHosts } from './sim-hosts.ts';
import { CLUSTER_NAME, defaultSpec, SECRET } from './topology.ts';

const HOSTS = 1000;
const RAMP_PER_SECOND = 100;
/** The issue's 60 s, halved to fit the suite's budget (1500 churn events, the kill in the middle). */
const CHURN_MS = 30_000;
const CHURN_PER_SECOND = 50;
const KILL_AT_MS = 15_000;
const VISIBLE_P99_MS = 1000;
/** From the last host gone to nothing left anywhere. */
const NO_LEAK_MS = 17_000;

clusterScenario('T10: 1000 simulated hosts churning, a node killed mid-run', () => defaultSpec({ hosts: [], apps: {} }), (cluster) => {
  it('shows joins across nodes within 1 s, never two entries for a host, and leaks nothing', async () => {
    const c = cluster();
    const fronts = c.signals.map((s) => `ws://127.0.0.1:${s.front.address.port}/v1/signal`);
    // An observer on s2, as an ingress sees the directory: when does a host of s1 appear there?
    const startedAt = new Map<string, number>();
    const visibleMs: number[] = [];
    const observer = new SignalingClient({
      url: `${c.signals[1]!.url.replace('http', 'ws')}/v1/signal`,
      token: mintToken(SECRET, { role: 'ingress', sub: 'observer', ttlSeconds: 3600 }),
      info: { name: 'observer' },
      WebSocketImpl: WebSocket as never,
    });
    observer.onjoin = (peer) => {
      const id = String(peer.info.hostId ?? '');
      const t = startedAt.get(id);
      if (t !== undefined) {
        visibleMs.push(Date.now() - t);
        startedAt.delete(id);
      }
    };
    observer.start();
    const sims = new SimHosts({ secret: SECRET, backoff: { initialMs: 100, maxMs: 2000 } });
    let seq = 0;
    try {
      await waitFor(async () => observer.connected, 10_000, () => 'the observer did not join s2');
      // Ramp at 100/s, alternating nodes; hosts started on s1 are timed until s2's observer sees them.
      for (let i = 0; i < HOSTS; i++) {
        const id = `sim-${seq++}`;
        if (i % 2 === 0) startedAt.set(id, Date.now());
        sims.start(id, fronts[i % 2]!);
        await hold(1000 / RAMP_PER_SECOND);
      }
      await sims.allWelcomed(30_000);
      expect(percentile(visibleMs, 99), `join→visible across nodes over ${visibleMs.length} hosts`).toBeLessThanOrEqual(VISIBLE_P99_MS);

      // Churn, sampling s1's view for duplicate entries once a second.
      const duplicates: string[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const h = await c.health(0);
          const ids = (h?.peers ?? []).filter((p) => p.role === 'host').map((p) => String(p.info?.hostId));
          const seen = new Set<string>();
          for (const id of ids) (seen.has(id) ? duplicates.push(id) : seen.add(id));
          await hold(1000);
        }
      })();
      const churnStart = Date.now();
      let killed = false;
      while (Date.now() - churnStart < CHURN_MS) {
        if (!killed && Date.now() - churnStart >= KILL_AT_MS) {
          killed = true;
          await c.signals[1]!.proc.kill9();
        }
        const live = sims.live;
        const victim = live[Math.floor(Math.random() * live.length)];
        if (victim) {
          const r = Math.random();
          if (r < 0.4) sims.leave(victim.hostId, 'close');
          else if (r < 0.8) sims.leave(victim.hostId, 'vanish');
          else sims.move(victim.hostId, fronts[fronts.indexOf(victim.url) === 0 ? 1 : 0]!);
          if (r < 0.8) sims.start(`sim-${seq++}`, fronts[seq % 2]!);
        }
        await hold(1000 / CHURN_PER_SECOND);
      }
      sampling = false;
      await sampler;
      expect(duplicates, 'host ids with two live entries in s1\'s view (fencing: the newest registration wins)').toEqual([]);
    } finally {
      observer.close();
      // Everyone leaves: half with a close frame, half vanishing.
      for (const [i, h] of sims.live.entries()) sims.leave(h.hostId, i % 2 === 0 ? 'close' : 'vanish');
    }
    const liveIngresses = c.ingresses.filter((i) => i.proc.running).length;
    const P = `dcdn:{${CLUSTER_NAME}}:`;
    await waitFor(
      async () => {
        const leases = Number(redisCli(c.redis.host, c.redis.port, 'ZCARD', `${P}leases`));
        const hostKeys = redisKeys(c.redis.host, c.redis.port, `${P}p:h:*`).length;
        const views = await Promise.all(c.signals.flatMap((s, i) => (s.proc.running ? [c.health(i)] : [])));
        const ingressViews = await c.attachments();
        const ok = leases === liveIngresses && hostKeys === 0 && views.every((v) => v !== null && v.peers.every((p) => p.role !== 'host')) && [...ingressViews.values()].every((h) => h.length === 0);
        return ok ? true : null;
      },
      NO_LEAK_MS,
      () => {
        const leases = redisCli(c.redis.host, c.redis.port, 'ZCARD', `${P}leases`);
        return `presence leaked: ZCARD leases = ${leases} (want ${liveIngresses}), ${redisKeys(c.redis.host, c.redis.port, `${P}p:h:*`).length} host keys left (leases and janitor, deliverable 1)`;
      },
      500,
    );
  });
});
