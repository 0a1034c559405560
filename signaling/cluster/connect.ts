/**
 * Picks a signaling node's cluster parts: the Redis ones when a cluster URL is given (loaded
 * on demand, so single-machine signaling never loads ioredis), else the in-memory ones.
 *
 * `createSignalingServer` is synchronous while connecting to Redis is not, so the Redis parts
 * are wrapped: every call waits for the connection, and `connected` settles when it is made
 * (the server awaits it before it listens, so a wrong URL fails the start).
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { createMemoryCluster } from './memory.ts';
import type { BusMessage, ClusterEvent, ClusterLog, ClusterParts } from './types.ts';

/** Where a signaling node finds its cluster (`dcdn signal --cluster …`). */
export interface ClusterOptions {
  /** `redis://HOST:PORT` of the coordination Redis. */
  url: string;
  /** Key prefix `dcdn:{NAME}:` (default `main`): several clusters may share one Redis. */
  clusterName?: string;
  /** This node's id; default {@link defaultNodeId}. New per process start. */
  nodeId?: string;
  /** This node's region (default `default`). */
  region?: string;
}

/** `${hostname}-${pid}-${rand4}`: new per process, so a restarted node never inherits a dead one's inbox. */
export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

/** The Redis factory's shape (cluster/redis.ts). */
type ConnectRedis = (opts: { url: string; clusterName: string; nodeId: string; region: string; log?: ClusterLog }) => Promise<ClusterParts>;

/**
 * The parts for `options`: memory when `cluster` is absent, else Redis (connected lazily).
 *
 * @example
 * ```ts
 * const { parts, connected } = clusterParts({ url: 'redis://10.0.0.2:6379', region: 'eu' }, log);
 * await connected; // rejects when Redis cannot be reached
 * ```
 */
export function clusterParts(cluster: ClusterOptions | undefined, log?: ClusterLog): { parts: ClusterParts; connected: Promise<void> } {
  const nodeId = cluster?.nodeId ?? defaultNodeId();
  const region = cluster?.region ?? 'default';
  if (!cluster) return { parts: createMemoryCluster({ nodeId, region }), connected: Promise.resolve() };
  // Loaded only in cluster mode, so single-machine signaling never loads ioredis.
  const ready: Promise<ClusterParts> = import('./redis.ts').then((m: { connectRedisCluster: ConnectRedis }) =>
    m.connectRedisCluster({ url: cluster.url, clusterName: cluster.clusterName ?? 'main', nodeId, region, ...(log ? { log } : {}) }),
  );
  return { parts: deferred(ready, nodeId, region), connected: ready.then(() => undefined) };
}

/** Parts whose every call waits for `ready`. */
function deferred(ready: Promise<ClusterParts>, nodeId: string, region: string): ClusterParts {
  // Keep an unhandled rejection from crashing before the server awaits `connected`.
  ready.catch(() => {});
  const handlers: Array<(m: BusMessage, from: string) => void> = [];
  void ready.then((p) => p.bus.onMessage((m, from) => handlers.forEach((h) => h(m, from))), () => {});
  return {
    nodeId,
    region,
    kind: 'redis',
    presence: {
      register: async (e, o) => (await ready).presence.register(e, o),
      reclaim: async (e) => (await ready).presence.reclaim(e),
      unregister: async (k, ep, r) => (await ready).presence.unregister(k, ep, r),
      update: async (k, ep, p) => (await ready).presence.update(k, ep, p),
      renew: async (own, node) => (await ready).presence.renew(own, node),
      snapshot: async () => (await ready).presence.snapshot(),
      tail(cursor: string, onEvent: (e: ClusterEvent, cursor: string) => void, onReset: () => void) {
        let stop: (() => void) | null = null;
        let stopped = false;
        void ready.then((p) => {
          if (!stopped) stop = p.presence.tail(cursor, onEvent, onReset);
        }, () => {});
        return () => {
          stopped = true;
          stop?.();
        };
      },
      nodes: async () => (await ready).presence.nodes(),
      countVolunteers: async (a) => (await ready).presence.countVolunteers(a),
      close: async () => (await ready).presence.close(),
    },
    bus: {
      send: async (node, m) => (await ready).bus.send(node, m),
      onMessage: (h) => void handlers.push(h),
      close: async () => (await ready).bus.close(),
    },
    ephemeral: {
      putCandidate: async (id, c, ttl) => (await ready).ephemeral.putCandidate(id, c, ttl),
      getCandidate: async (id) => (await ready).ephemeral.getCandidate(id),
      take: async (b, r) => (await ready).ephemeral.take(b, r),
    },
    async close() {
      const p = await ready.catch(() => null);
      await p?.close();
    },
  };
}
