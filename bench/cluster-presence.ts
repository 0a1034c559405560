/**
 * The Redis coordination's own figures (docs/cluster-redis.md): register latency, join→visible
 * on another node's tail, relay round trips over the bus, renew of many entries, and Redis memory
 * per registered host. Two signaling nodes' parts in this process on one redis-server (unix
 * socket, tools/redis.ts), so the figures are the coordination's cost without the network.
 *
 * Part of `dcdn bench --only cluster` (bench/cluster.ts), which hands in its redis-server.
 */
import { Redis } from 'ioredis';
import type { PeerInfo } from '../protocol/index.ts';
import { connectRedisCluster } from '../signaling/cluster/redis.ts';
import type { ClusterParts, PresenceEntry } from '../signaling/cluster/types.ts';
import { startRedis, type RedisServer } from '../tools/redis.ts';
import { latencySummary, round } from './stats.ts';

export interface ClusterPresenceConfig {
  /** Hosts registered for the memory figure and the renew batch. Default 1000. */
  hosts: number;
  /** Samples of each latency. Default 1000. */
  samples: number;
  /** Wait out a killed and a closed node's peers leaving (about 8 s). Default true. */
  nodeLost: boolean;
}

type Summary = { p50: number | null; p90: number | null; p99: number | null; n: number };

export interface ClusterPresenceResults {
  config: ClusterPresenceConfig & { redis: string };
  /** One awaited register at a time, ms. */
  register: Summary;
  /** `hosts` registrations sent at once (pipelined), wall ms. */
  registerPipelinedMs: number;
  /** From calling register on node A to the join arriving in node B's tail, ms. */
  joinVisible: Summary;
  /** A → B → A over the bus, one at a time, ms. */
  relayRoundTrip: Summary;
  /** Round trips per second with 64 in flight. */
  relayPerSecond: number;
  /** One renew of all `hosts` entries (batches of 500), wall ms. */
  renewMs: number;
  /** Redis `used_memory` growth per registered host, bytes: with its share of the events stream, and without. */
  bytesPerHost: { withEvents: number; entryOnly: number };
  /**
   * With the default timings, from a node's last heartbeat to the last of its 100 peers' `leave
   * node-lost` in another node's tail, ms: a killed node (bound: lease 6 s + tick 2 s) and a node
   * that closed without unregistering (bound: one tick).
   */
  nodeLostMs: { killed: number; closed: number } | null;
}

function peer(i: number): PeerInfo {
  return {
    id: `7f3c2a9e-0b1d-4c6e-9a8f-${String(i).padStart(12, '0')}`,
    role: 'host',
    info: { name: `host-${i}`, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36', cores: 8, webgpu: true },
    since: Date.now(),
    node: 'a',
    region: 'eu',
  };
}

function entry(i: number, node: string): Omit<PresenceEntry, 'epoch'> {
  return { key: `h:host-${i}`, node, region: 'eu', peer: peer(i), address: `198.51.100.${i % 250}` };
}

async function usedMemory(raw: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await raw.info('memory'))![1]);
}

/** Runs on `redis` when given (cluster names of its own, so another user of it is not disturbed), else on a redis-server of its own. */
export async function runClusterPresenceBench(config: Partial<ClusterPresenceConfig> & { redis?: RedisServer } = {}): Promise<ClusterPresenceResults> {
  const { redis, ...rest } = config;
  const cfg: ClusterPresenceConfig = { hosts: 1000, samples: 1000, nodeLost: true, ...rest };
  const server = redis ?? (await startRedis());
  const raw = new Redis({ path: server.socket });
  const parts: ClusterParts[] = [];
  try {
    const open = async (nodeId: string, clusterName: string) => {
      const p = await connectRedisCluster({ url: server.url, clusterName, nodeId, region: 'eu' });
      parts.push(p);
      return p;
    };
    const a = await open('a', 'bench');
    const b = await open('b', 'bench');

    // join → visible on B, and register latency on A, one at a time.
    const seen = new Map<string, () => void>();
    const snap = await b.presence.snapshot();
    const stopTail = b.presence.tail(snap.cursor, (e) => {
      if (e.t === 'join') seen.get(e.entry.key)?.();
    }, () => undefined);
    const register: number[] = [];
    const visible: number[] = [];
    for (let i = 0; i < cfg.samples; i++) {
      const e = entry(i, 'a');
      const arrived = new Promise<number>((resolve) => seen.set(e.key, () => resolve(performance.now())));
      const t0 = performance.now();
      await a.presence.register(e, {});
      register.push(performance.now() - t0);
      visible.push((await arrived) - t0);
      seen.delete(e.key);
    }
    stopTail();

    // Relay round trips: B echoes every signal back to A.
    b.bus.onMessage((m, from) => void b.bus.send(from, m).catch(() => undefined));
    const pending = new Map<number, () => void>();
    a.bus.onMessage((m) => {
      if (m.t === 'signal') pending.get((m.data as { n: number }).n)?.();
    });
    const roundTrip = (n: number) =>
      new Promise<void>((resolve) => {
        pending.set(n, resolve);
        void a.bus.send('b', { v: 1, t: 'signal', from: 'i-1', to: 'h-1', data: { n, sdp: 'a=candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host'.repeat(4) } });
      });
    const relay: number[] = [];
    for (let n = 0; n < cfg.samples; n++) {
      const t0 = performance.now();
      await roundTrip(n);
      relay.push(performance.now() - t0);
    }
    let next = cfg.samples;
    const t1 = performance.now();
    const total = 5000;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < cfg.samples + total) await roundTrip(next++);
    }));
    const relayPerSecond = total / ((performance.now() - t1) / 1000);

    // Memory per host and pipelined registration, on a cluster name of their own.
    const m = await open('m', 'memory');
    const before = await usedMemory(raw);
    const t2 = performance.now();
    const epochs = await Promise.all(Array.from({ length: cfg.hosts }, (_, i) => m.presence.register(entry(i, 'm'), {})));
    const registerPipelinedMs = performance.now() - t2;
    const after = await usedMemory(raw);
    await raw.xtrim('dcdn:{memory}:events', 'MAXLEN', 0);
    const trimmed = await usedMemory(raw);

    const t3 = performance.now();
    await m.presence.renew(epochs.map((e, i) => ({ key: `h:host-${i}`, epoch: e.epoch })), { cv: 1, peers: cfg.hosts });
    const renewMs = performance.now() - t3;

    const nodeLostMs = cfg.nodeLost ? { killed: await nodeLost(server.url, true), closed: await nodeLost(server.url, false) } : null;

    return {
      config: { ...cfg, redis: 'redis-server 7 on a unix socket, this machine, no persistence' },
      register: rounded(latencySummary(register)),
      registerPipelinedMs: round(registerPipelinedMs, 1)!,
      joinVisible: rounded(latencySummary(visible)),
      relayRoundTrip: rounded(latencySummary(relay)),
      relayPerSecond: Math.round(relayPerSecond),
      renewMs: round(renewMs, 1)!,
      bytesPerHost: { withEvents: Math.round((after - before) / cfg.hosts), entryOnly: Math.round((trimmed - before) / cfg.hosts) },
      nodeLostMs,
    };
  } finally {
    await Promise.all(parts.map((p) => p.close()));
    raw.disconnect();
    if (!redis) await server.stop();
  }
}

/** How long after its last heartbeat a node's 100 peers have left another node's tail. */
async function nodeLost(url: string, killed: boolean): Promise<number> {
  const clusterName = `lost-${killed ? 'killed' : 'closed'}`;
  const watcher = await connectRedisCluster({ url, clusterName, nodeId: 'w', region: 'eu' });
  // A heartbeat that never comes again after the first: a killed (or frozen) machine.
  const dying = await connectRedisCluster({ url, clusterName, nodeId: 'k', region: 'eu', ...(killed && { timings: { heartbeatIntervalMs: 3_600_000 } }) });
  try {
    const snap = await watcher.presence.snapshot();
    let left = 0;
    const allLeft = new Promise<number>((resolve) => {
      watcher.presence.tail(snap.cursor, (e) => {
        if (e.t === 'leave' && e.reason === 'node-lost' && ++left === 100) resolve(performance.now());
      }, () => undefined);
    });
    await Promise.all(Array.from({ length: 100 }, (_, i) => dying.presence.register(entry(i, 'k'), {})));
    // The last beat: the start for a killed node (its first and only), close() for a closed one.
    const t0 = killed ? performance.now() : (await dying.presence.renew([], { cv: 0, peers: 100 }), performance.now());
    if (!killed) await dying.close();
    return Math.round((await allLeft) - t0);
  } finally {
    await Promise.all([watcher.close(), dying.close()]);
  }
}

function rounded(s: Summary): Summary {
  return { p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), n: s.n };
}
