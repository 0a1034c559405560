/**
 * T1 (SCALE-OUT §4.3, issue #11 deliverable 6): hosts on both signaling nodes are placed on
 * exactly K = 2 of the 3 ingresses, as `assign()` says; requests over every ingress succeed; an
 * app whose only host is not attached to an ingress is forwarded once to a peer ingress.
 * (The cross-node WebRTC case with a real Chromium tab is t01b-webrtc.test.ts.)
 */
import { expect, it } from 'vitest';
import { loadAssign, missing } from './cluster-api.ts';
import { httpCall } from './http-call.ts';
import { describeLoad, startLoad } from './load.ts';
import { clusterScenario } from './scenario.ts';
import { defaultSpec } from './topology.ts';

/** The bound for placement to settle after start (the "within 10 s"). */
const PLACED_MS = 10_000;

clusterScenario('T1: cross-node relay and placement', () => defaultSpec(), (cluster) => {
  it('attaches every host to exactly 2 ingresses, each ingress holding the hosts assign() gives it', async () => {
    const c = cluster();
    const attached = await c.untilAttached(2, PLACED_MS);
    expect([...attached.values()].reduce((n, hosts) => n + hosts.length, 0)).toBe(40);
    const assign = await loadAssign();
    const ingresses = c.ingresses.map((i) => ({ name: i.name, region: i.region, weight: 1, draining: false }));
    const expected = new Map(c.ingresses.map((i) => [i.name, [] as string[]]));
    // The host key of an operator's host is its hostId (presence-key.ts's linkKey); the hosts' region is their node's.
    for (const h of c.spec.hosts) for (const name of assign(h.name, c.spec.signaling[h.home]!.region, ingresses, 2)) expected.get(name)!.push(h.name);
    for (const [name, hosts] of expected) expect({ ingress: name, hosts: attached.get(name) }).toEqual({ ingress: name, hosts: hosts.sort() });
    // `dcdn hosts list` (through either node) names the same ingresses for each host.
    const listed = await c.dcdnVia(1, 'hosts', 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as Array<{ hostId: string; ingresses: string[] }>;
    const placedOn = (host: string) => [...attached].filter(([, hosts]) => hosts.includes(host)).map(([name]) => name).sort();
    expect(Object.fromEntries(rows.map((r) => [r.hostId, [...r.ingresses].sort()]))).toEqual(Object.fromEntries(c.spec.hosts.map((h) => [h.name, placedOn(h.name)])));
  });

  it('serves 1000 GETs spread over i1-i3 with no failure', async () => {
    const c = cluster();
    const load = startLoad({ urls: c.ingresses.map((i) => `${i.url}/@echo/t1`), ratePerSecond: 100, durationMs: 10_000 });
    const s = await load.done;
    expect(s.total).toBeGreaterThanOrEqual(950);
    expect(s.failed, describeLoad(s)).toBe(0);
    // Hosts of both nodes served.
    expect(Object.keys(s.byHost).some((h) => h.startsWith('h1-'))).toBe(true);
    expect(Object.keys(s.byHost).some((h) => h.startsWith('h2-'))).toBe(true);
  });

  it('forwards gpu requests once from the ingress without the gpu host, and never twice', async () => {
    const c = cluster();
    const attached = await c.attachments();
    const without = [...attached].filter(([, hosts]) => !hosts.includes('h2-0')).map(([name]) => name);
    if (without.length === 0) missing('K-of-N placement (deliverable 3)', 'every ingress is attached to the gpu host, so nothing needs forwarding');
    const from = c.ingress(without[0]!);
    const results = await Promise.all(Array.from({ length: 20 }, () => httpCall(`${from.url}/@gpu/t1`)));
    for (const r of results) {
      const via = r.headers['dcdn-via'];
      if (r.status === 503 && r.headers['dcdn-error'] === 'INGRESS_NO_HOST') missing('ingress-to-ingress forwarding (deliverable 3)', `${from.name} answered 503 INGRESS_NO_HOST instead of forwarding`);
      expect({ status: r.status, host: r.headers['dcdn-host'] }).toEqual({ status: 200, host: 'h2-0' });
      if (typeof via !== 'string') missing('`dcdn-via` on forwarded responses (deliverable 3)', `a forwarded response from ${from.name} has no dcdn-via`);
      const hops = via.split(',').map((s) => s.trim());
      expect(hops).toHaveLength(2);
      expect(hops[0]).toBe(from.name);
    }
    // Requests at an ingress that has the host are not forwarded.
    const direct = c.ingress([...attached].find(([, hosts]) => hosts.includes('h2-0'))![0]);
    const r = await httpCall(`${direct.url}/@gpu/t1`);
    expect(r.status).toBe(200);
    expect(String(r.headers['dcdn-via'] ?? direct.name).split(',')).toHaveLength(1);
  });
});
