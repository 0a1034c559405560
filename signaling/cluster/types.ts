/**
 * The cluster's coordination contracts (docs/cluster.md). Single-machine signaling uses the
 * in-memory implementations (memory.ts: presence, a loopback bus, local rate limits); a cluster of
 * signaling nodes uses the Redis ones (redis-presence.ts, redis-bus.ts, redis-ephemeral.ts).
 * The hub only ever sees these interfaces, so local and remote peers take the same path.
 *
 * Design and measurements: ../shared/SCALE-OUT.md §3 (leases, epochs, fencing, janitor).
 */
import type { AppConfig, AppStatus, PeerInfo, SignalingErrorCode } from '../../protocol/index.ts';

/** A registered peer (host or ingress), as the whole cluster sees it. */
export interface PresenceEntry {
  /** `h:<linkKey>` for hosts (presence-key.ts), `i:<name>` for ingresses. */
  key: string;
  /** Fencing token from one cluster-wide counter: a later registration has a larger epoch. */
  epoch: number;
  /** The signaling node that holds the peer's connection. */
  node: string;
  /** The node's region for hosts, the ingress's own `--region` for ingresses. */
  region: string;
  /** What the other role is sent (`id` is the connection id). */
  peer: PeerInfo;
  /** The peer's address: bans and per-address caps. Never sent to peers. */
  address: string;
  /** A host's reports of what it has loaded (`dcdn apps`). */
  status?: AppStatus[];
}

/** A change to the presence directory, in the order the store applied it. */
export type ClusterEvent =
  | { v: 1; t: 'join'; entry: PresenceEntry; replaced?: { peer: string; node: string } }
  | { v: 1; t: 'update'; entry: PresenceEntry }
  | { v: 1; t: 'leave'; key: string; peer: string; epoch: number; node: string; reason: string };

/** A live signaling node. */
export interface NodeRecord {
  id: string;
  region: string;
  /** The control-plane version this node has applied (deploys wait for every node's). */
  cv: number;
  startedAt: number;
  /** Where operators and tabs reach the node, when it advertised one. */
  url?: string;
  /** How many peers it holds. */
  peers: number;
}

/** Thrown by `register` when a volunteer address is at its cap (`SIG_RATE_LIMITED` to the client). */
export class PresenceLimitError extends Error {
  override name = 'PresenceLimitError';
}

/** Thrown by any store call when the store cannot be reached within its timeout. */
export class PresenceUnavailableError extends Error {
  override name = 'PresenceUnavailableError';
}

export interface PresenceStore {
  /** Registers a peer that said hello; fences any older registration of the same key (the newest wins). Throws {@link PresenceLimitError}. */
  register(e: Omit<PresenceEntry, 'epoch'>, opts: { volunteerCap?: number }): Promise<{ epoch: number; replaced?: { peer: string; node: string } }>;
  /** Like register, but only if the key is absent (a resumed node, Redis back from an outage). Null when someone else holds it. */
  reclaim(e: Omit<PresenceEntry, 'epoch'>): Promise<{ epoch: number } | null>;
  /** Removes the entry if `epoch` is still current, and emits `leave`. */
  unregister(key: string, epoch: number, reason: string): Promise<boolean>;
  /** Patches peer info or status if `epoch` is current, and emits `update`. */
  update(key: string, epoch: number, patch: Partial<Pick<PresenceEntry, 'peer' | 'status'>>): Promise<boolean>;
  /** Renews this node's lease and its entries'; reports keys fenced by a newer epoch, keys missing, and a new dataset generation. */
  renew(own: Array<{ key: string; epoch: number }>, node: { cv: number; peers: number }): Promise<{ fenced: string[]; missing: string[]; genChanged: boolean }>;
  /** Live entries and the cursor to tail from (replaying events after it is idempotent by epoch). */
  snapshot(): Promise<{ entries: PresenceEntry[]; cursor: string; gen: string }>;
  /** Delivers every event after `cursor`, in order; `onReset` when the cursor is gone (take a new snapshot). Returns a stop function. */
  tail(cursor: string, onEvent: (e: ClusterEvent, cursor: string) => void, onReset: () => void): () => void;
  /** Live signaling nodes. */
  nodes(): Promise<NodeRecord[]>;
  /** Live volunteer registrations from one address, cluster-wide. */
  countVolunteers(address: string): Promise<number>;
  close(): Promise<void>;
}

/** A message between signaling nodes. `v` lets nodes of mixed versions ignore what they do not know. */
export type BusMessage =
  | { v: 1; t: 'signal'; from: string; to: string; data: unknown }
  | { v: 1; t: 'unreachable'; to: string; peer: string }
  | { v: 1; t: 'check'; id: string; host: string; app: string; config: AppConfig; origin: string }
  | { v: 1; t: 'checked'; id: string; host: string; ok: boolean; error: string; ms: number }
  | { v: 1; t: 'kick'; peer: string; code: SignalingErrorCode; message: string }
  | { v: 1; t: 'drain'; peer: string; draining: boolean }
  /** A scheduled run for an ingress of the receiving node (signaling/cron-dispatch.ts); its result goes back to `origin`. */
  | { v: 1; t: 'cron'; id: string; ingress: string; app: string; cron: string; scheduledTime: number; origin: string }
  | { v: 1; t: 'cron-result'; id: string; ingress: string; ok: boolean; code: string; error: string; host: string; ms: number };

/** Point-to-point messages between signaling nodes: ordered per (sender, receiver), at most once. */
export interface NodeBus {
  /** Rejects with {@link PresenceUnavailableError} when the bus is down. */
  send(node: string, m: BusMessage): Promise<void>;
  onMessage(h: (m: BusMessage, from: string) => void): void;
  close(): Promise<void>;
}

/** A shared token bucket's rate. */
export interface Rate { perSecond: number; burst: number }

/** Short-lived shared state: deploy-check candidates and cluster-wide rate limits. */
export interface EphemeralStore {
  putCandidate(id: string, candidate: unknown, ttlMs: number): Promise<void>;
  getCandidate(id: string): Promise<unknown | null>;
  /** GCRA token bucket; falls back to a local bucket when the store is down (fail-open, per node). */
  take(bucket: string, rate: Rate): Promise<boolean>;
}

/**
 * One signaling node's coordination parts. `createMemoryCluster` (memory.ts) makes the
 * single-machine ones; `connectRedisCluster` (redis.ts) the cluster ones:
 *
 * ```ts
 * connectRedisCluster(opts: { url: string; clusterName: string; nodeId: string; region: string; log?: ClusterLog }): Promise<ClusterParts>
 * createMemoryCluster(opts: { nodeId: string; region: string }): ClusterParts
 * ```
 *
 * `presence.tail` delivers every event, this node's own included: consumers skip `e.node === nodeId`
 * when they applied it already.
 */
export interface ClusterParts {
  readonly nodeId: string;
  readonly region: string;
  /** `memory` on one machine, `redis` in a cluster. */
  readonly kind: 'memory' | 'redis';
  presence: PresenceStore;
  bus: NodeBus;
  ephemeral: EphemeralStore;
  close(): Promise<void>;
}

/** Where cluster parts report what happened (connection lost and back, janitor sweeps, fencing). */
export type ClusterLog = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
