/**
 * The ingress in a cluster (issue #11.3, SCALE-OUT.md §3.7-3.8, §3.10): it attaches only the
 * hosts placement puts on it, detaches the others after a grace (requests in flight finish),
 * attaches newly placed ones, says who it is in hello, shows the cluster in health, warns of a
 * KV split, and guards its peer port. Real signaling, real node hosts over WebSocket; the
 * `cluster` message is injected by a relay (test/cluster-inject.ts) so the test chooses the
 * other ingresses precisely.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIngress, openKvStore, type Ingress } from '../ingress/index.ts';
import { signPeerRequest } from '../ingress/peer-forward.ts';
import { assign, type Stream } from '../protocol/index.ts';
import { createSignalingServer, mintToken, type SignalingServer } from '../signaling/index.ts';
import { startClusterInjector, type ClusterInjector } from './cluster-inject.ts';
import { startNodeHost, type NodeHost } from './node-host.ts';
import { until } from './node-network.ts';

const SECRET = 'cluster-test-secret-0123456789';
let signaling: SignalingServer;
let signalUrl: string;
let inject: ClusterInjector;
let ingress: Ingress;
const hosts: NodeHost[] = [];
const logs: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
const dir = mkdtempSync(join(tmpdir(), 'dcdn-cluster-'));

/** Requests held by the hosts until the test releases them. */
const held: Stream[] = [];
const answer = (s: Stream) => {
  s.onreset = () => {};
  if (s.request.url.includes('/hold')) return void held.push(s);
  s.respond({ status: 200, headers: [['content-length', '2']] });
  void s.write(new TextEncoder().encode('ok')).then(() => s.end());
};
const release = (s: Stream) => {
  s.respond({ status: 200, headers: [['content-length', '4']] });
  void s.write(new TextEncoder().encode('done')).then(() => s.end());
};

function startHost(name: string): NodeHost {
  const h = startNodeHost({ signalUrl, token: mintToken(SECRET, { role: 'host', sub: name, ttlSeconds: 600 }), name, onstream: answer });
  hosts.push(h);
  return h;
}

/** Host names placement puts on `A` (and on the ghost `B`) with K = 1 between the two. */
function namesPlaced(on: 'A' | 'B', count: number): string[] {
  const pair = [
    { name: 'A', region: 'default', weight: 1, draining: false },
    { name: 'B', region: 'default', weight: 1, draining: false },
  ];
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (assign(`node-h${i}`, 'default', pair, 1)[0] === on) out.push(`h${i}`);
  return out;
}

const attached = () => ingress.pool.list().map((h) => h.name).sort();

async function untilAsync(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function health(): Promise<Record<string, unknown>> {
  return (await (await fetch(`${ingress.url}/_dcdn/health`)).json()) as Record<string, unknown>;
}

beforeAll(async () => {
  signaling = createSignalingServer({ secret: SECRET });
  signalUrl = (await signaling.listen(0)).replace(/^http/, 'ws') + '/v1/signal';
  inject = await startClusterInjector(signalUrl, { own: true, attach: 1 });
  // Placement-only ingress B: it takes forwards at a URL nobody listens on.
  inject.extra = [{ name: 'B', region: 'default', weight: 1, draining: false, peerUrl: 'http://127.0.0.1:9' }];
  ingress = createIngress({
    signalUrl: inject.url,
    token: () => mintToken(SECRET, { role: 'ingress', sub: 'A', ttlSeconds: 600 }),
    port: 0,
    name: 'A',
    region: 'default',
    weight: 1,
    transport: 'websocket',
    peerListen: { host: '127.0.0.1', port: 0 },
    detachGraceMs: 300,
    attachJitterMs: 50,
    kv: await openKvStore(`sqlite:${join(dir, 'kv.db')}`),
    log: (level, msg, fields) => void logs.push({ level, msg, ...(fields ? { fields } : {}) }),
  });
  await ingress.listen();
  await until(() => ingress.cluster !== null);
});

afterEach(async () => {
  for (const s of held.splice(0)) release(s);
  for (const h of hosts.splice(0)) h.close();
  inject.overrides.clear();
  inject.push();
  await until(() => ingress.pool.size === 0);
  await untilAsync(async () => (await health()).known === 0);
});

afterAll(async () => {
  await ingress?.close();
  await inject?.close();
  await signaling?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('an ingress in a cluster', () => {
  it('says its name, region, weight and peer URL in hello, and shows the cluster in health', async () => {
    const h = await health();
    expect(h.cluster).toEqual({
      ingresses: [
        { name: 'A', region: 'default', weight: 1, draining: false, peerUrl: ingress.peerUrl },
        { name: 'B', region: 'default', weight: 1, draining: false, peerUrl: 'http://127.0.0.1:9' },
      ],
      attach: 1,
      region: 'default',
    });
    expect(h.kv).toMatchObject({ store: 'sqlite', shared: false });
  });

  it('attaches only the hosts placement puts on it, and keeps the others known', async () => {
    const mine = namesPlaced('A', 3);
    const theirs = namesPlaced('B', 3);
    for (const n of [...mine, ...theirs]) startHost(n);
    await until(() => attached().length === 3, 10_000);
    // Every join has been seen by the time all six are known (hosts are placed as they join).
    await untilAsync(async () => (await health()).known === 6);
    const h = await health();
    expect(attached()).toEqual([...mine].sort());
    expect(h.known).toBe(6);
    expect((h.hosts as Array<{ name: string }>).map((x) => x.name).sort()).toEqual([...mine].sort());
  });

  it('keeps a host placed elsewhere for the grace, lets its requests finish, then closes it; attaches it again when placed back', async () => {
    const [name] = namesPlaced('A', 1);
    startHost(name!);
    await until(() => attached().includes(name!), 10_000);
    const id = ingress.pool.list()[0]!.id;
    // A request the host holds while placement moves it away.
    const slow = fetch(`${ingress.url}/hold`).then(async (r) => ({ status: r.status, body: await r.text() }));
    await until(() => held.length === 1);
    inject.overrides.set('A', { draining: true });
    inject.push();
    // After the grace the host takes no new requests here, but its request in flight goes on.
    await until(() => ingress.pool.get(id)?.traits.draining === true, 5000);
    expect(logs.some((l) => l.msg.startsWith('host placed on other ingresses'))).toBe(true);
    release(held.shift()!);
    expect(await slow).toEqual({ status: 200, body: 'done' });
    await until(() => ingress.pool.size === 0, 5000);
    // Placed here again: attached again at once (within the jitter).
    inject.overrides.clear();
    inject.push();
    await until(() => attached().includes(name!), 10_000);
  });

  it('keeps a host whose placement comes back within the grace, without a new session', async () => {
    const [name] = namesPlaced('A', 1);
    const host = startHost(name!);
    await until(() => attached().includes(name!), 10_000);
    const sessions = host.sessions.length;
    inject.overrides.set('A', { draining: true });
    inject.push();
    inject.overrides.clear();
    inject.push();
    await until(() => logs.some((l) => l.msg === 'host placed here again; keeping its session'));
    expect(host.sessions.length).toBe(sessions);
    expect(ingress.pool.list()[0]!.traits.draining).toBe(false);
  });

  it('logs a KV split once per change of the ingress list while it keeps handlers\' KV in SQLite', async () => {
    const splits = () => logs.filter((l) => l.level === 'error' && l.msg.startsWith('kv split')).length;
    const before = splits();
    inject.push(); // the same list: said already
    inject.extra = [...inject.extra, { name: 'C', region: 'default', weight: 1, draining: false }];
    inject.push();
    await until(() => splits() === before + 1);
    inject.extra = inject.extra.filter((i) => i.name !== 'C');
    inject.push();
    await until(() => splits() === before + 2);
    expect(before).toBeGreaterThanOrEqual(1); // at the first cluster message (A and B)
  });

  it('refuses bad cluster options with INGRESS_BAD_OPTION naming them', () => {
    const base = { signalUrl: inject.url, token: 't' };
    expect(() => createIngress({ ...base, weight: 0 })).toThrow(expect.objectContaining({ code: 'INGRESS_BAD_OPTION', message: expect.stringMatching(/`weight`/) }));
    expect(() => createIngress({ ...base, region: 'eu west' })).toThrow(expect.objectContaining({ code: 'INGRESS_BAD_OPTION', message: expect.stringMatching(/`region`/) }));
    expect(() => createIngress({ ...base, peerUrl: 'ws://x' })).toThrow(expect.objectContaining({ code: 'INGRESS_BAD_OPTION', message: expect.stringMatching(/`peerUrl`/) }));
  });

  describe('its peer port', () => {
    const peerGet = (path: string, headers: Record<string, string> = {}) => fetch(`${ingress.peerUrl}${path}`, { headers });

    it('answers 403 INGRESS_PEER_FORBIDDEN without a valid dcdn-peer signature', async () => {
      const stale = signPeerRequest(inject.peerKey, 'B', 'GET', '/x', Date.now() - 31_000);
      for (const headers of [{} as Record<string, string>, { 'dcdn-peer': 'B.1.forged' }, { 'dcdn-peer': signPeerRequest('wrong-key', 'B', 'GET', '/x', Date.now()) }, { 'dcdn-peer': stale }, { 'dcdn-peer': signPeerRequest(inject.peerKey, 'B', 'GET', '/other', Date.now()) }]) {
        const r = await peerGet('/x', headers);
        expect(r.status).toBe(403);
        expect(r.headers.get('dcdn-error')).toBe('INGRESS_PEER_FORBIDDEN');
      }
    });

    it('serves a signed forward, names the path in dcdn-via, and never forwards it again', async () => {
      // No host attached here: a visitor's request would go to B; a forwarded one must not.
      const r = await peerGet('/x', { 'dcdn-peer': signPeerRequest(inject.peerKey, 'B', 'GET', '/x', Date.now()) });
      expect(r.status).toBe(503);
      expect(r.headers.get('dcdn-error')).toBe('INGRESS_NO_HOST');
      expect(r.headers.get('dcdn-via')).toBe('B,A');
      const [name] = namesPlaced('A', 1);
      startHost(name!);
      await until(() => attached().includes(name!), 10_000);
      const ok = await peerGet('/y', { 'dcdn-peer': signPeerRequest(inject.peerKey, 'B', 'GET', '/y', Date.now()), 'x-forwarded-for': '203.0.113.7' });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('dcdn-via')).toBe('B,A');
    });
  });

  it('joining a cluster, connects only the hosts placed on it, never the others for a moment', async () => {
    const four = ['A', 'B', 'D'].map((n) => ({ name: n, region: 'default', weight: 1, draining: false }));
    const placed = (on: string) => {
      for (let i = 0; ; i++) if (assign(`node-d${i}`, 'default', four, 1)[0] === on) return `d${i}`;
    };
    const others = [placed('A'), placed('B')];
    const mine = placed('D');
    const started = [...others, mine].map((n) => startHost(n));
    await until(() => attached().includes(others[0]!), 10_000);
    const dialsBefore = started.map((h) => h.dials);
    const d = createIngress({ signalUrl: inject.url, token: () => mintToken(SECRET, { role: 'ingress', sub: 'D', ttlSeconds: 600 }), port: 0, name: 'D', transport: 'websocket' });
    try {
      await d.listen();
      await until(() => d.pool.list().some((h) => h.name === mine), 10_000);
      const families = (await d.metrics!.renderJson()) as Array<{ name: string; values: Array<{ value: number }> }>;
      const opened = families.find((f) => f.name === 'dcdn_sessions_opened_total')!.values.reduce((n, v) => n + v.value, 0);
      expect(opened).toBe(1);
      expect(d.pool.list().map((h) => h.name)).toEqual([mine]);
      // D never told the hosts placed elsewhere to dial it (A's dial of its own host came before).
      expect(started.map((h, i) => h.dials - dialsBefore[i]!)).toEqual([0, 0, 1]);
    } finally {
      await d.close();
    }
  });

  it('leaves signaling first when it shuts down, so placement moves while its requests in flight finish', async () => {
    const s = createIngress({
      signalUrl: inject.url,
      token: () => mintToken(SECRET, { role: 'ingress', sub: 'S', ttlSeconds: 600 }),
      port: 0,
      name: 'S',
      transport: 'websocket',
      shutdownGraceMs: 10_000,
    });
    await s.listen();
    await until(() => ingress.cluster?.ingresses.some((i) => i.name === 'S') === true && s.cluster?.ingresses.length === 3);
    const three = ['A', 'B', 'S'].map((n) => ({ name: n, region: 'default', weight: 1, draining: false }));
    let name = '';
    for (let i = 0; !name; i++) if (assign(`node-s${i}`, 'default', three, 1)[0] === 'S') name = `s${i}`;
    startHost(name);
    await until(() => s.pool.list().some((h) => h.name === name), 10_000);
    const slow = fetch(`${s.url}/hold`).then(async (r) => ({ status: r.status, body: await r.text() }));
    await until(() => held.length === 1);
    const closing = s.close();
    // The other ingresses see S leave at once, while its request is still in flight…
    await until(() => ingress.cluster?.ingresses.some((i) => i.name === 'S') === false, 5000);
    expect(held).toHaveLength(1);
    // …and the request still finishes on S's session.
    release(held.shift()!);
    expect(await slow).toEqual({ status: 200, body: 'done' });
    await closing;
  });

  it('answers its own 503 when the only peer with a host is unreachable, naming only itself', async () => {
    // A host only B has: placement puts it there, and the peer URL of B answers nothing.
    const [name] = namesPlaced('B', 1);
    startHost(name!);
    await untilAsync(async () => (await health()).known === 1);
    const r = await fetch(`${ingress.url}/z`);
    expect(r.status).toBe(503);
    expect(r.headers.get('dcdn-error')).toBe('INGRESS_NO_HOST');
    expect(r.headers.get('dcdn-via')).toBe('A');
    expect(await r.text()).toMatch(/no peer ingress could be reached \(B\)/);
  });
});
