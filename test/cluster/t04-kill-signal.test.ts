/**
 * T4 (SCALE-OUT §4.3): kill -9 of a signaling node under 100 req/s. Serving does not go through
 * signaling, so nothing fails and no session is rebuilt; the dead node's hosts and ingress
 * reconnect through the load balancer to s1 and re-register within 3 s; s2's entries are gone
 * from every view within 8 s. The load runs 20 s (the issue's 60 s, cut to fit the suite's
 * 12-minute budget; the kill is at 8 s so 12 s of load follow it, 4× the re-registration bound).
 */
import { expect, it } from 'vitest';
import { waitFor } from './cluster-api.ts';
import { describeLoad, startLoad } from './load.ts';
import { clusterScenario, hold } from './scenario.ts';
import { defaultSpec } from './topology.ts';

const LOAD_MS = 20_000;
const KILL_AT_MS = 8000;
/** The bounds: re-registered elsewhere, and the dead node gone from every view. */
const REREGISTER_MS = 3000;
const NODE_GONE_MS = 8000;

clusterScenario('T4: kill -9 of a signaling node under load', () => defaultSpec(), (cluster) => {
  it('loses no request, rebuilds no session, and moves s2\'s peers to s1 within 3 s', async () => {
    const c = cluster();
    await c.untilAttached(2);
    const load = startLoad({ urls: c.ingresses.map((i) => `${i.url}/@echo/t4`), ratePerSecond: 100, durationMs: LOAD_MS });
    await hold(KILL_AT_MS);
    const sessionsBefore = c.hosts.sessionLog.length;
    await c.signals[1]!.proc.kill9();
    const killedAt = Date.now();
    const s2Hosts = [...c.hosts.hosts.keys()].filter((n) => n.startsWith('h2-'));
    await waitFor(
      async () => {
        const h = await c.health(0);
        const moved = h?.peers.filter((p) => p.role === 'host' && s2Hosts.includes(String(p.info?.name)) && p.node === 's1') ?? [];
        const i3 = h?.peers.find((p) => p.role === 'ingress' && p.info?.name === 'i3' && p.node === 's1');
        return moved.length === s2Hosts.length && i3 ? true : null;
      },
      REREGISTER_MS,
      () => 's2\'s hosts and i3 are not all registered on s1 (presence with leases, reconnect through the LB, deliverable 1)',
      50,
    );
    await waitFor(
      async () => {
        const h = await c.health(0);
        return h && !h.peers.some((p) => p.node === 's2') && !(h.nodes ?? []).some((n) => n.id === 's2') ? true : null;
      },
      NODE_GONE_MS - (Date.now() - killedAt),
      () => 's1 still lists entries of the dead node s2 (janitor, deliverable 1)',
      100,
    );
    const s = await load.done;
    expect(s.failed, describeLoad(s)).toBe(0);
    expect(c.hosts.sessionLog.length - sessionsBefore, 'sessions rebuilt after the kill (ingress links keyed by host id must survive)').toBe(0);
  });
});
