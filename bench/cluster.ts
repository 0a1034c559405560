/**
 * Section `cluster` (docs/cluster.md "Measured"): what running as a cluster costs, side by side
 * with the single-node path in one run, on one real redis-server (tools/redis.ts):
 *
 * * **presence**: a host says hello on signaling node `a`; how long until an ingress on `a`
 *   (local) and an ingress on node `b` (across the Redis feed) get its `join`;
 * * **relay**: a signal from an ingress on `a` to a host on `a` (local) and to a host on `b`
 *   (over the Redis bus), one way, taking turns;
 * * **forwarding**: hello-world req/s at a fixed concurrency through the ingress that holds the
 *   tab (direct) and through the other one, which has no usable host and forwards each request
 *   once to the first (K = 1), taking turns within each repetition;
 * * the coordination's own figures (bench/cluster-presence.ts): register, renew, Redis memory
 *   per host, a lost node's peers leaving.
 *
 * The signaling nodes, each ingress and the tab run in children of their own
 * (bench/servers/dcdn-cluster.ts); the WebSocket clients and the load run here, so both ends of a
 * latency read one clock. On one machine the two ingresses of a forward share its cores, which a
 * forward across machines would not: the req/s ratio is a floor.
 */
import { WebSocket } from 'ws';
import type { ServerMessage } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';
import { startRedis, type RedisServer } from '../tools/redis.ts';
import { spawnScript, stopChild, type Child } from './children.ts';
import { onCleanup } from './cleanup.ts';
import { runClusterPresenceBench, type ClusterPresenceResults } from './cluster-presence.ts';
import { load, type LoadResult } from './http-load.ts';
import { progress } from './progress.ts';
import { latencySummary, median, round } from './stats.ts';

export interface ClusterConfig {
  reps: number;
  /** Hosts that say hello, one at a time (each gives a local and a cross-node figure). */
  presenceSamples: number;
  /** Signals of each kind (local, cross-node), taking turns. */
  relaySamples: number;
  /** Length of each autocannon run, whole seconds. */
  seconds: number;
  /** Keep-alive connections of each autocannon run. */
  connections: number;
  /** The coordination figures: samples, hosts, and whether to wait out a lost node (about 8 s). */
  coordination: { samples: number; hosts: number; nodeLost: boolean };
}

/**
 * Signals sent per second by the measuring ingress: under signaling's per-connection budget
 * (50/s, burst 200), so the figure is the relay's, never the limiter's.
 */
const RELAY_PER_SECOND = 40;

type Latency = ReturnType<typeof latencySummary>;

export interface ClusterResults {
  skipped?: string;
  config: ClusterConfig & { redis: string; forwarding: string };
  /** Hello sent → `join` at an ingress on the same node / on the other node, ms. */
  joinVisible: { local: Latency; cross: Latency };
  /** Signal sent by an ingress → received by a host on the same node / on the other node, ms. */
  relay: { local: Latency; cross: Latency };
  /** By variant, one per repetition. */
  http: { direct: LoadResult[]; forwarded: LoadResult[] };
  coordination?: ClusterPresenceResults;
}

export interface ClusterFigures {
  skipped?: string;
  joinVisible: { local: Latency; cross: Latency };
  relay: { local: Latency; cross: Latency };
  http: Record<'direct' | 'forwarded', { rps: number | null; p50Ms: number | null; p99Ms: number | null; failures: number }>;
  coordination?: ClusterPresenceResults;
}

const EMPTY: Latency = { p50: null, p90: null, p99: null, n: 0 };

export async function runClusterSection(config: ClusterConfig): Promise<ClusterResults> {
  const results: ClusterResults = {
    config: { ...config, redis: 'redis-server 7 on a unix socket, no persistence', forwarding: `hello world (the demo app), ${config.connections} connections, dcdn werift, 1 tab, K = 1` },
    joinVisible: { local: EMPTY, cross: EMPTY },
    relay: { local: EMPTY, cross: EMPTY },
    http: { direct: [], forwarded: [] },
  };
  let redis: RedisServer;
  try {
    progress('cluster: starting redis-server');
    redis = await startRedis();
  } catch (err) {
    results.skipped = (err as Error).message.replace(/: the Redis KV tests need.*$/, '');
    progress(`cluster: skipped (${results.skipped})`);
    return results;
  }
  const unregisterRedis = onCleanup(() => redis.stop());
  const secret = `bench-cluster-${Math.random().toString(36).slice(2)}-0123456789`;
  try {
    const children: Child[] = [];
    const part = async (name: string, args: string[]) => {
      const child = spawnScript(name, './servers/dcdn-cluster.ts', [...args, '--secret', secret, '--exit-with-parent'], { readyTimeoutMs: 120_000 });
      children.push(child);
      return child.ready;
    };
    try {
      progress('cluster: starting 2 signaling nodes, 2 ingresses (a process each) and a Chromium host tab');
      const signals = (await part('cluster-signal', ['--part', 'signal', '--redis', redis.url])).signals as { a: string; b: string };
      const ingresses = await Promise.all(['bench-i1', 'bench-i2'].map(async (name) => String((await part(name, ['--part', 'ingress', '--name', name, '--signal', wsUrl(signals.a)])).url)));
      // The tab comes once both ingresses know each other: placed before, it would first attach to
      // the lone one and stay there for the detach grace, and nothing would be forwarded.
      await waitFor(async () => (await Promise.all(ingresses.map(health))).every((h) => h?.cluster?.ingresses.length === 2) || null, 20_000, 'the ingresses did not both get the cluster message');
      await part('cluster-tab', ['--part', 'tab', '--signal', signals.a]);
      const direct = await waitFor(async () => {
        for (const url of ingresses) if ((await health(url))?.hosts.some((h) => h.transport === 'webrtc')) return url;
        return null;
      }, 30_000, 'the tab has no WebRTC session to either ingress');
      const forwarded = ingresses.find((u) => u !== direct)!;
      await checkForwarded(forwarded);
      // Load first: the presence clients below join as peers, and the tab's placement must not move meanwhile.
      for (const url of [direct, forwarded]) await load(`${url}/`, config.connections, 1);
      for (let rep = 0; rep < config.reps; rep++) {
        const turn = rep % 2 === 0 ? (['direct', 'forwarded'] as const) : (['forwarded', 'direct'] as const);
        for (const variant of turn) {
          const r = await load(`${variant === 'direct' ? direct : forwarded}/`, config.connections, config.seconds);
          results.http[variant].push(r);
          progress(`cluster rep ${rep + 1}/${config.reps} ${variant}: ${r.rps.toFixed(0)} req/s${r.failures ? `, ${r.failures} FAILED` : ''}`);
        }
      }
      const ws = { a: wsUrl(signals.a), b: wsUrl(signals.b) };
      results.joinVisible = await measurePresence(ws, secret, config.presenceSamples);
      progress(`cluster: join visible p50 local ${fmt(results.joinVisible.local.p50)} ms, cross-node ${fmt(results.joinVisible.cross.p50)} ms`);
      results.relay = await measureRelay(ws, secret, config.relaySamples);
      progress(`cluster: relay p50 local ${fmt(results.relay.local.p50)} ms, cross-node ${fmt(results.relay.cross.p50)} ms`);
    } finally {
      // The tab first, then the ingresses, then signaling: nobody reconnects to a part already gone.
      for (const child of children.reverse()) await stopChild(child);
    }
    progress('cluster: coordination figures (register, renew, memory per host, lost node)');
    results.coordination = await runClusterPresenceBench({ ...config.coordination, redis });
    return results;
  } finally {
    unregisterRedis();
    await redis.stop();
  }
}

const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(2));

/** What the cluster section reads of an ingress's `/_dcdn/health`. */
async function health(url: string): Promise<{ hosts: Array<{ transport?: string }>; cluster?: { ingresses: unknown[] } } | null> {
  try {
    const r = await fetch(`${url}/_dcdn/health`);
    return r.ok ? ((await r.json()) as { hosts: Array<{ transport?: string }>; cluster?: { ingresses: unknown[] } }) : null;
  } catch {
    return null;
  }
}

async function waitFor<T>(probe: () => Promise<T | null>, ms: number, message: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`cluster: ${message} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function wsUrl(http: string): string {
  return `${http.replace(/^http/, 'ws')}/v1/signal`;
}

/** One GET through the ingress without a host must name two hops: else the figure is not a forward's. */
async function checkForwarded(url: string): Promise<void> {
  const r = await fetch(`${url}/`);
  await r.arrayBuffer();
  const via = r.headers.get('dcdn-via') ?? '';
  if (r.status !== 200 || via.split(',').length !== 2) throw new Error(`cluster: a request to ${url} was not forwarded once (status ${r.status}, dcdn-via "${via}")`);
}

/** A bare signaling peer: its welcome, and every later message to `onmessage`. */
interface Peer {
  id: string;
  socket: WebSocket;
  onmessage: (m: ServerMessage, at: number) => void;
}

async function peer(ws: string, secret: string, role: 'host' | 'ingress', info: Record<string, unknown>, beforeHello?: () => void): Promise<Peer> {
  const token = mintToken(secret, { role, sub: `bench-${role}`, ttlSeconds: 600 });
  const socket = new WebSocket(`${ws}?token=${encodeURIComponent(token)}`);
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const p: Peer = { id: '', socket, onmessage: () => {} };
  const welcome = new Promise<void>((resolve) => {
    socket.on('message', (data) => {
      const at = performance.now();
      const m = JSON.parse(String(data)) as ServerMessage;
      if (m.type === 'welcome') {
        p.id = m.id;
        resolve();
      } else p.onmessage(m, at);
    });
  });
  beforeHello?.();
  socket.send(JSON.stringify({ type: 'hello', info }));
  await welcome;
  return p;
}

/**
 * Watching ingresses of a weight no host is ever placed on (score -ln(u)/weight): they must not
 * take the tab's placement from the ingresses the load ran through.
 */
const WATCHER = { weight: 1e-9 };

async function measurePresence(ws: { a: string; b: string }, secret: string, samples: number): Promise<{ local: Latency; cross: Latency }> {
  const watchers = [await peer(ws.a, secret, 'ingress', { name: 'bench-watch-a', ...WATCHER }), await peer(ws.b, secret, 'ingress', { name: 'bench-watch-b', ...WATCHER })];
  const local: number[] = [];
  const cross: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const hostId = `bench-presence-${i}`;
      const seen = watchers.map((w) => new Promise<number>((resolve) => {
        w.onmessage = (m, at) => {
          if (m.type === 'join' && m.peer.info.hostId === hostId) resolve(at);
        };
      }));
      let t0 = 0;
      const host = await peer(ws.a, secret, 'host', { hostId, name: hostId }, () => (t0 = performance.now()));
      const [atA, atB] = (await withTimeout(Promise.all(seen), 10_000, `host ${hostId}'s join did not reach both watchers`)) as [number, number];
      local.push(atA - t0);
      cross.push(atB - t0);
      // Its leave reaches the other node before the next sample starts.
      const left = new Promise<void>((resolve) => (watchers[1]!.onmessage = (m) => m.type === 'leave' && m.id === host.id && resolve()));
      host.socket.close();
      await withTimeout(left, 10_000, `host ${hostId}'s leave did not reach node b`);
    }
  } finally {
    for (const w of watchers) w.socket.close();
  }
  return { local: rounded(latencySummary(local)), cross: rounded(latencySummary(cross)) };
}

async function measureRelay(ws: { a: string; b: string }, secret: string, samples: number): Promise<{ local: Latency; cross: Latency }> {
  const sender = await peer(ws.a, secret, 'ingress', { name: 'bench-relay', ...WATCHER });
  // The sender must have heard of both hosts (the cross one through the feed) before it signals them.
  const known = new Set<string>();
  let wake = () => {};
  sender.onmessage = (m) => {
    if (m.type === 'join') known.add(m.peer.id);
    wake();
  };
  const hosts = { local: await peer(ws.a, secret, 'host', { hostId: 'bench-relay-local' }), cross: await peer(ws.b, secret, 'host', { hostId: 'bench-relay-cross' }) };
  const out = { local: [] as number[], cross: [] as number[] };
  try {
    const both = new Promise<void>((resolve) => (wake = () => known.has(hosts.local.id) && known.has(hosts.cross.id) && resolve()));
    wake();
    await withTimeout(both, 10_000, 'the relay sender did not hear of both hosts');
    for (let n = 0; n < samples * 2; n++) {
      const where = n % 2 === 0 ? 'local' : 'cross';
      const host = hosts[where];
      const got = new Promise<number>((resolve) => {
        host.onmessage = (m, at) => {
          if (m.type === 'signal' && m.from === sender.id && (m.data as { n?: number }).n === n) resolve(at);
        };
      });
      const t0 = performance.now();
      sender.socket.send(JSON.stringify({ type: 'signal', to: host.id, data: { kind: 'bench', n } }));
      out[where].push((await withTimeout(got, 10_000, `signal ${n} to the ${where} host did not arrive`)) - t0);
      await new Promise((r) => setTimeout(r, 1000 / RELAY_PER_SECOND));
    }
  } finally {
    for (const p of [sender, hosts.local, hosts.cross]) p.socket.close();
  }
  return { local: rounded(latencySummary(out.local)), cross: rounded(latencySummary(out.cross)) };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`cluster: ${message} within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

function rounded(s: Latency): Latency {
  return { p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), n: s.n };
}

export function clusterFigures(r: ClusterResults): ClusterFigures {
  const http = (runs: LoadResult[]) => ({
    rps: round(median(runs.map((x) => x.rps)), 0),
    p50Ms: round(median(runs.map((x) => x.p50Ms))),
    p99Ms: round(median(runs.map((x) => x.p99Ms))),
    failures: runs.reduce((n, x) => n + x.failures, 0),
  });
  return {
    ...(r.skipped ? { skipped: r.skipped } : {}),
    joinVisible: r.joinVisible,
    relay: r.relay,
    http: { direct: http(r.http.direct), forwarded: http(r.http.forwarded) },
    ...(r.coordination ? { coordination: r.coordination } : {}),
  };
}
