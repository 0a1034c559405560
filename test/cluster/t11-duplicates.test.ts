/**
 * T11 (SCALE-OUT §4.3): duplicate host ids. Two hosts claiming one id on s1 and s2: the older is
 * told SIG_DUPLICATE_PEER, takes a new id (as the join page does), and both serve, without
 * flapping. A zombie: a host whose path to s1 goes silent reconnects to s2 (client keepalive);
 * s1 closes its stale connection, and the ingresses keep their sessions with it.
 */
import { expect, it } from 'vitest';
import { waitFor } from './cluster-api.ts';
import { startDelayProxy, type DelayProxy } from './delay-proxy.ts';
import { describeLoad, startLoad } from './load.ts';
import { clusterScenario, hold } from './scenario.ts';
import { startTcpLb, type TcpLb } from './tcp-lb.ts';
import { defaultSpec } from './topology.ts';

const DUPLICATE_SETTLE_MS = 5000;
/** Watch for flapping this long after the duplicate settled. */
const FLAP_WATCH_MS = 10_000;
const MAX_KICKS = 2;
/** Client keepalive reconnect (20 s) plus registration on s2. */
const ZOMBIE_MOVE_MS = 25_000;

clusterScenario('T11: duplicate host ids and zombies', () => defaultSpec(), (cluster) => {
  it('kicks the older of two hosts with one id, which takes a new id; both then serve, with no flapping', async () => {
    const c = cluster();
    await c.untilAttached(2);
    const a = c.hosts.start({ name: 'dup-a', hostId: 'dup', signalUrl: `ws://127.0.0.1:${c.signals[0]!.front.address.port}/v1/signal` });
    await waitFor(async () => a.client.connected, 10_000, () => 'dup-a did not join s1');
    await c.untilAttached(2);
    const b = c.hosts.start({ name: 'dup-b', hostId: 'dup', signalUrl: `ws://127.0.0.1:${c.signals[1]!.front.address.port}/v1/signal` });
    await waitFor(async () => (a.errors.includes('SIG_DUPLICATE_PEER') ? true : null), DUPLICATE_SETTLE_MS, () => `the older host was not told SIG_DUPLICATE_PEER (newest registration wins, deliverable 1); it got ${JSON.stringify(a.errors)}`);
    // What the join page does on SIG_DUPLICATE_PEER: a new id.
    c.hosts.close('dup-a');
    const a2 = c.hosts.start({ name: 'dup-a2', hostId: 'dup-2', signalUrl: `ws://127.0.0.1:${c.signals[0]!.front.address.port}/v1/signal` });
    await c.untilAttached(2, DUPLICATE_SETTLE_MS + 10_000);
    await hold(FLAP_WATCH_MS);
    const kicks = [a, b, a2].reduce((n, h) => n + h.errors.filter((e) => e === 'SIG_DUPLICATE_PEER').length, 0);
    expect(kicks).toBeLessThanOrEqual(MAX_KICKS);
    expect(b.client.connected && a2.client.connected).toBe(true);
  });

  it('a zombie on s1 is closed after its host moved to s2, and the ingresses keep its sessions', async () => {
    const c = cluster();
    // The zombie's only way to s1 is a proxy the test can cut; its LB fails over to s2 when the probe through it fails.
    let proxy: DelayProxy | null = null;
    let lb: TcpLb | null = null;
    try {
      proxy = await startDelayProxy({ target: { host: '127.0.0.1', port: c.signals[0]!.port } });
      lb = await startTcpLb({ policy: 'first', upstreams: [proxy.address, { host: '127.0.0.1', port: c.signals[1]!.port }], probe: { path: '/v1/health' } });
      const z = c.hosts.start({ name: 'zombie', signalUrl: `ws://127.0.0.1:${lb.address.port}/v1/signal` });
      await c.untilAttached(2);
      const sessions = c.hosts.sessionLog.filter((s) => s.host === 'zombie').length;
      const load = startLoad({ urls: c.ingresses.map((i) => `${i.url}/@echo/t11`), ratePerSecond: 30, durationMs: ZOMBIE_MOVE_MS + 5000 });
      proxy.cut();
      await waitFor(
        async () => {
          const views = await Promise.all([c.health(0), c.health(1)]);
          return views.every((v) => v?.peers.filter((p) => p.info?.name === 'zombie').map((p) => p.node).join() === 's2') ? true : null;
        },
        ZOMBIE_MOVE_MS,
        () => 'the zombie host is not registered (only) on s2 in both views (client keepalive + fencing, deliverable 1)',
        250,
      );
      expect(z.client.connected).toBe(true);
      const s = await load.done;
      expect(s.failed, describeLoad(s)).toBe(0);
      expect(c.hosts.sessionLog.filter((x) => x.host === 'zombie').length - sessions, 'sessions restarted for the moved host').toBe(0);
    } finally {
      await lb?.close();
      await proxy?.close();
    }
  });
});
