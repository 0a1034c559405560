import { afterEach, describe, expect, it } from 'vitest';
import { createSignalingServer, type SignalingServer, type SignalingServerOptions } from '../server.ts';
import { mintToken } from '../token.ts';
import { AppStore } from '../app-store.ts';
import { assign, volunteerScope } from '../../protocol/index.ts';
import { createMemoryCluster } from './memory.ts';
import { SharedCluster, TEST_SECRET, TestPeer } from './test-peer.ts';
import { PresenceUnavailableError, type ClusterParts, type PresenceStore } from './types.ts';

const servers: SignalingServer[] = [];
const peers: TestPeer[] = [];
const operator = mintToken(TEST_SECRET, { role: 'operator', ttlSeconds: 600 });

afterEach(async () => {
  for (const p of peers.splice(0)) p.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(options: Partial<SignalingServerOptions> = {}): Promise<{ http: string; ws: string; server: SignalingServer }> {
  const server = createSignalingServer({ secret: TEST_SECRET, ...options });
  servers.push(server);
  const http = await server.listen(0);
  await until(async () => (await fetch(`${http}/v1/health`)).status === 200);
  return { http, ws: `${http.replace(/^http/, 'ws')}/v1/signal`, server };
}

async function join(...args: Parameters<typeof TestPeer.join>): ReturnType<typeof TestPeer.join> {
  const joined = await TestPeer.join(...args);
  peers.push(joined[0]);
  return joined;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Memory parts whose presence the test can make fail (a store outage) or lose events of. */
function faultyMemory(nodeId = 'solo'): { parts: ClusterParts; down: { register: boolean; tail: boolean } } {
  const base = createMemoryCluster({ nodeId, region: 'default' });
  const down = { register: false, tail: false };
  const p = base.presence;
  const presence: PresenceStore = {
    register: async (e, o) => {
      if (down.register) throw new PresenceUnavailableError('store down');
      return p.register(e, o);
    },
    reclaim: async (e) => {
      if (down.register) throw new PresenceUnavailableError('store down');
      return p.reclaim(e);
    },
    unregister: (k, ep, r) => p.unregister(k, ep, r),
    update: (k, ep, patch) => p.update(k, ep, patch),
    renew: async (own, n) => {
      if (down.register) throw new PresenceUnavailableError('store down');
      return p.renew(own, n);
    },
    snapshot: () => p.snapshot(),
    tail: (c, onEvent, onReset) => p.tail(c, (e, cur) => (down.tail ? undefined : onEvent(e, cur)), onReset),
    nodes: () => p.nodes(),
    countVolunteers: (a) => p.countVolunteers(a),
    close: () => p.close(),
  };
  return { parts: { ...base, presence }, down };
}

describe('one signaling node on the memory parts', () => {
  it('lets the newest connection of a host id win: the older gets SIG_DUPLICATE_PEER, ingresses see join then leave replaced', async () => {
    const { ws, http } = await start();
    const [ingress] = await join(ws, 'ingress', { name: 'in-1' });
    const [older, first] = await join(ws, 'host', { hostId: 'tab-1', name: 'tab' });
    expect((await ingress.next('join')).peer.id).toBe(first.id);
    const [, second] = await join(ws, 'host', { hostId: 'tab-1', name: 'tab' });
    expect(await older.next('error')).toMatchObject({ code: 'SIG_DUPLICATE_PEER' });
    expect(await older.closed).toEqual({ code: 1008, reason: 'SIG_DUPLICATE_PEER' });
    expect((await ingress.next('join')).peer.id).toBe(second.id);
    expect(await ingress.next('leave')).toEqual({ type: 'leave', id: first.id, reason: 'replaced' });
    const { hosts } = (await (await fetch(`${http}/v1/hosts`, { headers: { authorization: `Bearer ${operator}` } })).json()) as { hosts: Array<{ id: string }> };
    expect(hosts.map((h) => h.id)).toEqual([second.id]);
  });

  it('closes a local peer with SIG_DUPLICATE_PEER when another node registers its key', async () => {
    const { parts } = faultyMemory();
    const { ws } = await start({ clusterParts: parts });
    const [ingress] = await join(ws, 'ingress');
    const [host, welcome] = await join(ws, 'host', { hostId: 'tab-2' });
    await until(async () => (await parts.presence.snapshot()).entries.some((e) => e.key === 'h:tab-2' && e.epoch > 0));
    await parts.presence.register({ key: 'h:tab-2', node: 'elsewhere', region: 'default', peer: { id: 'remote-peer', role: 'host', info: { hostId: 'tab-2' }, since: 1 }, address: '' }, {});
    expect(await host.next('error')).toMatchObject({ code: 'SIG_DUPLICATE_PEER' });
    expect(await ingress.next('leave')).toEqual({ type: 'leave', id: welcome.id, reason: 'replaced' });
    await parts.close();
  });

  it('closes a peer whose key the renew finds fenced (its replacement’s event was lost)', async () => {
    const { parts, down } = faultyMemory();
    const { ws } = await start({ clusterParts: parts, renewIntervalMs: 20 });
    const [host] = await join(ws, 'host', { hostId: 'tab-3' });
    await until(async () => (await parts.presence.snapshot()).entries.some((e) => e.key === 'h:tab-3' && e.epoch > 0));
    down.tail = true;
    await parts.presence.register({ key: 'h:tab-3', node: 'elsewhere', region: 'default', peer: { id: 'remote-peer', role: 'host', info: {}, since: 1 }, address: '' }, {});
    expect(await host.next('error')).toMatchObject({ code: 'SIG_DUPLICATE_PEER' });
    expect((await host.closed).reason).toBe('SIG_DUPLICATE_PEER');
    await parts.close();
  });

  it('puts back a key the store lost (renew reports it missing), keeping the connection', async () => {
    const { parts } = faultyMemory();
    const { ws } = await start({ clusterParts: parts, renewIntervalMs: 20 });
    const [host] = await join(ws, 'host', { hostId: 'tab-4' });
    let epoch = 0;
    await until(async () => ((epoch = (await parts.presence.snapshot()).entries.find((e) => e.key === 'h:tab-4')?.epoch ?? 0) > 0));
    await parts.presence.unregister('h:tab-4', epoch, 'lease-expired');
    await until(async () => ((await parts.presence.snapshot()).entries.find((e) => e.key === 'h:tab-4')?.epoch ?? 0) > epoch);
    expect(host.received.map((m) => m.type)).not.toContain('error');
    await parts.close();
  });

  it('admits peers and relays between them while the store is down (island mode), and registers them once it is back', async () => {
    const { parts, down } = faultyMemory();
    const { ws, server } = await start({ clusterParts: parts, renewIntervalMs: 20 });
    down.register = true;
    const [host, hostWelcome] = await join(ws, 'host', { hostId: 'tab-5' });
    const [ingress, ingressWelcome] = await join(ws, 'ingress', { name: 'in-5' });
    expect(ingressWelcome.peers.map((p) => p.id)).toEqual([hostWelcome.id]);
    ingress.send({ type: 'signal', to: hostWelcome.id, data: { kind: 'offer' } });
    expect(await host.next('signal')).toEqual({ type: 'signal', from: ingressWelcome.id, data: { kind: 'offer' } });
    expect(server.peers()).toHaveLength(2);
    down.register = false;
    await until(async () => (await parts.presence.snapshot()).entries.length === 2);
    await parts.close();
  });

  it('answers ping with pong, and sends ingresses the cluster message after their welcome', async () => {
    const { ws } = await start({ attach: 3, peerKey: () => 'k'.repeat(43) });
    const [ingress] = await join(ws, 'ingress', { name: 'in-6', region: 'eu', weight: 2, peerUrl: 'http://10.0.0.6:8081' });
    expect(await ingress.next('cluster')).toEqual({ type: 'cluster', ingresses: [{ name: 'in-6', region: 'eu', weight: 2, draining: false, peerUrl: 'http://10.0.0.6:8081' }], attach: 3, peerKey: 'k'.repeat(43), region: 'default' });
    ingress.send({ type: 'ping' });
    expect(await ingress.next('pong')).toEqual({ type: 'pong' });
    const [other] = await join(ws, 'ingress', { name: 'in-7' });
    expect((await other.next('cluster')).ingresses.map((i) => i.name)).toEqual(['in-6', 'in-7']);
    // The first ingress hears of the second once changes settle (debounced).
    expect((await ingress.next('cluster')).ingresses.map((i) => i.name)).toEqual(['in-6', 'in-7']);
  });

  it('sends a large directory in chunks: a welcome with more, then peers lists', async () => {
    const { ws } = await start();
    const hosts = await Promise.all(Array.from({ length: 520 }, (_, i) => join(ws, 'host', { hostId: `bulk-${i}` })));
    const [ingress, welcome] = await join(ws, 'ingress');
    expect(welcome.peers).toHaveLength(500);
    expect(welcome.more).toBe(true);
    const chunks = [await ingress.next('peers'), await ingress.next('peers')];
    expect(chunks.map((c) => [c.peers.length, c.done])).toEqual([[500, false], [20, true]]);
    expect(new Set(chunks.flatMap((c) => c.peers.map((p) => p.id)))).toEqual(new Set(hosts.map(([, w]) => w.id)));
  }, 60_000);

  it('answers health with 503 starting until the directory is loaded', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const base = createMemoryCluster({ nodeId: 'slow', region: 'default' });
    const snapshot = base.presence.snapshot.bind(base.presence);
    const parts: ClusterParts = { ...base, presence: Object.assign(Object.create(null) as PresenceStore, bindAll(base.presence), { snapshot: async () => (await gate, snapshot()) }) };
    const server = createSignalingServer({ secret: TEST_SECRET, clusterParts: parts });
    servers.push(server);
    const http = await server.listen(0);
    const res = await fetch(`${http}/v1/health`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ok: false, status: 'starting' });
    release();
    await until(async () => (await fetch(`${http}/v1/health`)).status === 200);
    expect(await (await fetch(`${http}/v1/health`)).json()).toMatchObject({ ok: true, nodes: [{ id: 'slow', region: 'default', peers: 0 }] });
    await parts.close();
  });
});

describe('two signaling nodes sharing presence and a bus', () => {
  async function twoNodes() {
    const shared = new SharedCluster();
    const a = await start({ clusterParts: shared.parts('node-a', 'eu'), renewIntervalMs: 3_600_000 });
    const b = await start({ clusterParts: shared.parts('node-b', 'us'), renewIntervalMs: 3_600_000 });
    return { shared, a, b };
  }

  it('shows a host on one node to an ingress on the other, with its node and region, and relays both ways', async () => {
    const { a, b } = await twoNodes();
    const [host, hostWelcome] = await join(a.ws, 'host', { hostId: 'tab-x', name: 'x' });
    const [ingress, ingressWelcome] = await join(b.ws, 'ingress', { name: 'in-b' });
    expect(ingressWelcome.peers).toMatchObject([{ id: hostWelcome.id, node: 'node-a', region: 'eu' }]);
    expect((await host.next('join')).peer).toMatchObject({ id: ingressWelcome.id, node: 'node-b', region: 'us' });
    ingress.send({ type: 'signal', to: hostWelcome.id, data: { kind: 'offer', sdp: 'o' } });
    expect(await host.next('signal')).toEqual({ type: 'signal', from: ingressWelcome.id, data: { kind: 'offer', sdp: 'o' } });
    host.send({ type: 'signal', to: ingressWelcome.id, data: { kind: 'answer', sdp: 'a' } });
    expect(await ingress.next('signal')).toEqual({ type: 'signal', from: hostWelcome.id, data: { kind: 'answer', sdp: 'a' } });
    const health = (await (await fetch(`${b.http}/v1/health`)).json()) as { hosts: number; ingresses: number; nodes: Array<{ id: string }> };
    expect(health).toMatchObject({ hosts: 1, ingresses: 1 });
    expect(health.nodes.map((n) => n.id).sort()).toEqual(['node-a', 'node-b']);
  });

  it('lists in GET /v1/hosts the ingresses each host is placed on, as assign() computes them from every node’s live ingresses', async () => {
    const { a, b } = await twoNodes();
    await join(a.ws, 'ingress', { name: 'in-eu-1', region: 'eu' });
    await join(a.ws, 'ingress', { name: 'in-eu-2', region: 'eu', weight: 3 });
    await join(b.ws, 'ingress', { name: 'in-us-1' });
    await join(a.ws, 'host', { hostId: 'tab-eu' });
    await join(b.ws, 'host', { hostId: 'tab-us' });
    const live = [
      { name: 'in-eu-1', region: 'eu', weight: 1, draining: false },
      { name: 'in-eu-2', region: 'eu', weight: 3, draining: false },
      { name: 'in-us-1', region: 'us', weight: 1, draining: false },
    ];
    const want = { 'tab-eu': assign('tab-eu', 'eu', live, 2), 'tab-us': assign('tab-us', 'us', live, 2) };
    // Same region first: an eu host gets both eu ingresses, a us host its one us ingress then an eu one.
    expect(new Set(want['tab-eu'])).toEqual(new Set(['in-eu-1', 'in-eu-2']));
    expect(want['tab-us'][0]).toBe('in-us-1');
    let listed: Array<{ hostId: string; ingresses: string[] }> = [];
    await until(async () => {
      listed = ((await (await fetch(`${b.http}/v1/hosts`, { headers: { authorization: `Bearer ${operator}` } })).json()) as { hosts: typeof listed }).hosts;
      return listed.length === 2 && listed.every((h) => h.ingresses.length === 2 && h.ingresses.includes(h.hostId === 'tab-eu' ? 'in-eu-1' : 'in-us-1'));
    });
    expect(Object.fromEntries(listed.map((h) => [h.hostId, h.ingresses]))).toEqual(want);
  });

  it('answers SIG_PEER_UNREACHABLE when the bus to the peer’s node is down, and SIG_UNKNOWN_PEER when the peer is gone there', async () => {
    const { shared, a, b } = await twoNodes();
    const [host, hostWelcome] = await join(a.ws, 'host', { hostId: 'tab-y' });
    const [ingress] = await join(b.ws, 'ingress');
    shared.cut.add('node-a');
    ingress.send({ type: 'signal', to: hostWelcome.id, data: 1 });
    expect(await ingress.next('error')).toMatchObject({ code: 'SIG_PEER_UNREACHABLE', to: hostWelcome.id });
    shared.cut.clear();
    // The host leaves, and node B misses the leave: node A answers that the peer is gone.
    shared.dropEvents = (e, node) => node === 'node-b' && e.t === 'leave';
    host.close();
    await until(async () => (await shared.presence.snapshot()).entries.every((e) => e.peer.id !== hostWelcome.id));
    ingress.send({ type: 'signal', to: hostWelcome.id, data: 2 });
    expect(await ingress.next('error')).toMatchObject({ code: 'SIG_UNKNOWN_PEER', to: hostWelcome.id });
  });

  it('answers SIG_PEER_UNREACHABLE for a peer whose node’s lease ran out, and hides it', async () => {
    const { shared, a, b } = await twoNodes();
    const [, hostWelcome] = await join(a.ws, 'host', { hostId: 'tab-z' });
    const [ingress] = await join(b.ws, 'ingress');
    shared.dead.add('node-a');
    expect(await ingress.next('leave', 5000)).toEqual({ type: 'leave', id: hostWelcome.id, reason: 'node-lost' });
    ingress.send({ type: 'signal', to: hostWelcome.id, data: 1 });
    expect(await ingress.next('error')).toMatchObject({ code: 'SIG_PEER_UNREACHABLE' });
  });

  it('drains and bans a host from the other node', async () => {
    const { a, b } = await twoNodes();
    const [host, hostWelcome] = await join(a.ws, 'host', { hostId: 'tab-d' });
    const [ingress] = await join(b.ws, 'ingress');
    const drain = await fetch(`${b.http}/v1/hosts/${hostWelcome.id}/drain`, { method: 'POST', headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' }, body: '{}' });
    expect(drain.status).toBe(200);
    expect(await drain.json()).toMatchObject({ host: { id: hostWelcome.id, draining: true, node: 'node-a' } });
    expect((await ingress.next('update')).peer).toMatchObject({ id: hostWelcome.id, draining: true });
    const ban = await fetch(`${b.http}/v1/hosts/${hostWelcome.id}/ban`, { method: 'POST', headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' }, body: '{}' });
    expect(ban.status).toBe(200);
    expect(await host.next('error')).toMatchObject({ code: 'SIG_BANNED' });
    expect(await ingress.next('leave')).toEqual({ type: 'leave', id: hostWelcome.id, reason: 'banned' });
  });

  it('checks a deploy on an operator host of another node, which fetches the candidate from its own node', async () => {
    const shared = new SharedCluster();
    const store = new AppStore(':memory:');
    try {
      const a = await start({ clusterParts: shared.parts('node-a'), apps: store });
      const b = await start({ clusterParts: shared.parts('node-b'), apps: store });
      const [host] = await join(a.ws, 'host', { hostId: 'checker', name: 'checker' });
      const deploy = fetch(`${b.http}/v1/apps/hello`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({ code: 'export default { fetch() { return new Response("hi"); } };' }),
      });
      const check = await host.next('check');
      const hostToken = mintToken(TEST_SECRET, { role: 'host', ttlSeconds: 60 });
      const candidate = await fetch(`${a.http}/v1/checks/${check.id}`, { headers: { authorization: `Bearer ${hostToken}` } });
      expect(candidate.status).toBe(200);
      expect(await candidate.json()).toMatchObject({ app: 'hello' });
      host.send({ type: 'checked', id: check.id, ok: true, error: '', ms: 3 });
      const res = await deploy;
      expect(res.status).toBe(201);
      expect(await res.json()).toMatchObject({ check: { status: 'ok', host: 'checker', ms: 3 } });
    } finally {
      await Promise.all(servers.splice(0).map((s) => s.close()));
      store.close();
    }
  });

  it('lists in GET /v1/apps on one node what hosts on another node report they serve', async () => {
    const shared = new SharedCluster();
    const store = new AppStore(':memory:');
    try {
      const a = await start({ clusterParts: shared.parts('node-a'), apps: store });
      const b = await start({ clusterParts: shared.parts('node-b'), apps: store });
      store.deploy('hello', 'export default { fetch() { return new Response("hi"); } };');
      const [host] = await join(a.ws, 'host', { hostId: 'reporter', name: 'reporter' });
      host.send({ type: 'status', apps: [{ name: 'hello', version: 1, state: 'serving' }] });
      const hostsOf = async () => {
        const res = await fetch(`${b.http}/v1/apps`, { headers: { authorization: `Bearer ${operator}` } });
        return ((await res.json()) as { apps: Array<{ name: string; hosts: unknown[] }> }).apps.find((x) => x.name === 'hello')?.hosts ?? [];
      };
      await until(async () => (await hostsOf()).length === 1);
      expect(await hostsOf()).toEqual([{ host: 'reporter', version: 1, state: 'serving' }]);
    } finally {
      await Promise.all(servers.splice(0).map((s) => s.close()));
      store.close();
    }
  });

  it('counts volunteers per address across nodes', async () => {
    const shared = new SharedCluster();
    const a = await start({ clusterParts: shared.parts('node-a'), maxVolunteersPerAddress: 1 });
    const b = await start({ clusterParts: shared.parts('node-b'), maxVolunteersPerAddress: 1 });
    const scope = volunteerScope();
    await join(a.ws, 'host', { hostId: 'v1' }, { sub: 'invite-a', scope });
    await until(async () => (await shared.presence.countVolunteers('127.0.0.1')) === 1);
    const token = mintToken(TEST_SECRET, { role: 'host', sub: 'invite-b', scope, ttlSeconds: 60 });
    expect(await TestPeer.refused(b.ws, token)).toEqual({ status: 429, code: 'SIG_RATE_LIMITED' });
  });
});

/** The methods of a class instance as own, bound properties (to override one in a test). */
function bindAll<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.getOwnPropertyNames(Object.getPrototypeOf(o))) {
    const v = (o as Record<string, unknown>)[k];
    if (k !== 'constructor' && typeof v === 'function') out[k] = (v as (...a: unknown[]) => unknown).bind(o);
  }
  return out as T;
}
