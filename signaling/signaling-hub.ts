/**
 * The signaling state machine: accepted sockets, presence, relaying, limits and reaping.
 *
 * It knows `ws` sockets but not HTTP: authentication happens before the upgrade (server.ts), so
 * every socket handed to {@link SignalingHub.accept} already has a verified role.
 *
 * Per connection: `awaiting-hello` (hello timer running, not listed) → `joined` (registered in
 * presence, listed, gets join/leave/update/signal) → closed. Any protocol violation sends one
 * `error` message and closes with the code's close code; a socket that does not finish the close
 * handshake is destroyed after {@link CLOSE_GRACE_MS}.
 *
 * Local sockets live here (`#connections`, `#joined`); everything cluster-wide goes through the
 * cluster parts (cluster/types.ts): each hello is registered in presence (the newest
 * registration of a host id or ingress name wins: SIG_DUPLICATE_PEER for the older), and what
 * local peers are told of others comes from the Directory (cluster/directory.ts), so a peer on
 * another signaling node looks like a local one. Signals to those go over the node bus. On one
 * machine the parts are in memory (cluster/memory.ts) and behave as before. docs/cluster.md.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { WebSocket, type RawData } from 'ws';
import { SIGNALING_ERRORS, SignalingError, type SignalingErrorCode } from '../protocol/index.ts';
import type { AppConfig } from '../protocol/index.ts';
import { parseClientMessage, type AppRef, type LeaveReason, type AppStatus, type CheckedMessage, type CronMessage, type IceServer, type PeerInfo, type PeerRole, type ServerMessage, type SignalRequest } from '../protocol/index.ts';
import type { HostReport } from './rollout.ts';
import { TokenBucket } from './token-bucket.ts';
import { mayRun, OPERATOR_TRUST, trustFromScope, volunteerHostId, volunteerName, type HostTrust } from '../protocol/index.ts';
import { INVITE_GRACE_MS } from './invite-grace.ts';
import { CronDispatch } from './cron-dispatch.ts';
import { Directory, PENDING_EPOCH, type DirectoryChange } from './cluster/directory.ts';
import { createMemoryCluster } from './cluster/memory.ts';
import { presenceKey } from './cluster/presence-key.ts';
import { PresenceLimitError, PresenceUnavailableError, type BusMessage, type ClusterParts, type PresenceEntry } from './cluster/types.ts';

/** How long a socket we closed may take to answer the close frame before it is destroyed. */
export const CLOSE_GRACE_MS = 1000;


export interface SignalingHubOptions {
  helloTimeoutMs: number;
  heartbeatIntervalMs: number;
  rateLimit: { perSecond: number; burst: number };
  maxBufferedBytes: number;
  log: FastifyBaseLogger;
  /** The apps' active versions, sent to each peer after its welcome. */
  apps?: () => AppRef[];
  /**
   * The operator's STUN/TURN (see turn.ts `iceServerSource`): each peer's welcome carries
   * `forPeer(id)`, and after `refreshAfterMs` an `ice` message with fresh credentials.
   */
  ice?: { forPeer(id: string): IceServer[]; refreshAfterMs: number | null };
  /**
   * Whether a host is banned (`dcdn hosts ban`), checked at hello with what signaling knows of
   * it; returns the ban's reason, or null. Default: nobody is.
   */
  isBanned?: (host: { hostId: string; address: string; sub: string | undefined }) => string | null;
  /**
   * Signals a host may relay per second, by the signal's `kind` (`offer`, `answer`,
   * `candidate`, `websocket`, `close`; anything else is `other`), on top of `rateLimit`: a host
   * relaying junk or floods of one kind to the ingresses is closed with SIG_RATE_LIMITED before
   * they have to read, parse and log it all. Ingresses are the operator's and not limited.
   * Defaults: {@link SIGNAL_RATE_DEFAULTS}.
   */
  signalRateLimits?: Partial<Record<SignalKind, { perSecond: number; burst: number }>>;
  /**
   * How long a volunteer may stay connected after its invite expired, so requests in flight can
   * finish; then it is disconnected with SIG_TOKEN_EXPIRED (leave reason `expired`), and the
   * ingresses close their sessions with it. Default 10000 ms.
   */
  inviteGraceMs?: number;
  /** Counts for metrics (signaling/metrics.ts): a signal relayed, a connection closed with a code. */
  onrelay?: () => void;
  onfail?: (code: SignalingErrorCode) => void;
  /**
   * Presence, the node bus and shared limits (cluster/types.ts): `createMemoryCluster` on one
   * machine, `connectRedisCluster` in a cluster. Every peer is registered there at hello.
   * Default: a memory cluster of one node named `local`.
   */
  cluster?: ClusterParts;
  /** Most volunteer hosts from one address, cluster-wide (enforced by `presence.register`). Default: no cap. */
  volunteerCap?: number;
  /** How often this node renews its presence entries. Default {@link HUB_CLUSTER_DEFAULTS}.renewIntervalMs. */
  renewIntervalMs?: number;
  /** How long a presence call may take before it counts as the store being down (island mode). */
  presenceTimeoutMs?: number;
  /** How many ingresses each host attaches to (`cluster` message), 1..8. Default 2. */
  attach?: number;
  /** The key ingresses sign forwarded requests with (`cluster` message). Default: random per process. */
  peerKey?: () => string;
  /** How long live-ingress changes are gathered before a `cluster` message goes out. Default 500 ms. */
  clusterDebounceMs?: number;
  /** Bytes that may wait unsent towards an ingress. Default 64 MiB. */
  ingressMaxBufferedBytes?: number;
  /** The control-plane version this node has applied, written with each renew (deploys wait for every node's). Default 0. */
  controlVersion?: () => number;
  /** How often the live signaling nodes are re-read (cluster/directory.ts). Default 2000 ms. */
  nodeRefreshMs?: number;
}

/** The kinds of signal budgeted separately (the link signals of protocol/link.ts, and the rest). */
export type SignalKind = 'offer' | 'answer' | 'candidate' | 'websocket' | 'close' | 'other';

/** Per connection: one offer/answer exchange per connection attempt needs a handful; ICE a few dozen candidates. */
export const SIGNAL_RATE_DEFAULTS: Readonly<Record<SignalKind, { perSecond: number; burst: number }>> = {
  offer: { perSecond: 2, burst: 10 },
  answer: { perSecond: 2, burst: 10 },
  candidate: { perSecond: 20, burst: 100 },
  websocket: { perSecond: 2, burst: 10 },
  close: { perSecond: 2, burst: 10 },
  other: { perSecond: 1, burst: 5 },
};

const SIGNAL_KINDS = new Set<string>(['offer', 'answer', 'candidate', 'websocket', 'close']);

// Default of SignalingHubOptions.inviteGraceMs, in a module of its own so that `dcdn --help`
// can print it without loading the hub.
export { INVITE_GRACE_MS } from './invite-grace.ts';
/** setTimeout's longest delay; longer waits are re-armed (invites may last 30 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One ingress in a `cluster` message. */
type ClusterIngress = Extract<ServerMessage, { type: 'cluster' }>['ingresses'][number];

/** A host as operators see it (`dcdn hosts list`). */
export interface HostSummary {
  id: string;
  /** The tab's own stable id (survives reconnects), from its hello. */
  hostId: string;
  name: string;
  sub: string | null;
  volunteer: boolean;
  apps: string[] | null;
  draining: boolean;
  address: string;
  since: string;
  userAgent: string | null;
  cores: number | null;
  memoryGiB: number | null;
  capabilities: string[];
  /** The signaling node that holds the host's connection. */
  node: string;
  /** Its region. */
  region: string;
}

/** How a host's load of a candidate version went (see {@link SignalingHub.checkApp}). */
export type CheckOutcome =
  | { status: 'ok'; host: string; ms: number }
  | { status: 'failed'; host: string; error: string; ms: number }
  /** No host answered in time, or every host asked left first. */
  | { status: 'timeout'; hosts: string[] }
  /** No operator host that could run the app was connected: nothing was checked. */
  | { status: 'skipped' };

interface PendingCheck {
  /** The peer ids of the hosts asked (on this node or others). */
  readonly asked: Set<string>;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly names: string[];
  settle(outcome: CheckOutcome): void;
}

/** A check this node relays for another node's deploy: the host's answer goes back to `origin`. */
interface RemoteCheck {
  readonly origin: string;
  readonly host: string;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** How many hosts load a candidate at once; the first answer decides. */
const CHECK_FAN_OUT = 2;

/** How long this node remembers a check it relays for another node (longer than any check timeout). */
const REMOTE_CHECK_TTL_MS = 5 * 60_000;

/** Peers per `welcome` and per `peers` chunk: a directory of 10 000 hosts is about 4 MB. */
export const PEERS_CHUNK = 500;

/** Defaults of the cluster options of {@link SignalingHubOptions}. */
export const HUB_CLUSTER_DEFAULTS = {
  /** How often this node renews its presence entries (their lease is 15 s in Redis). */
  renewIntervalMs: 5000,
  /** How long a presence call may take before the node goes into island mode for that call. */
  presenceTimeoutMs: 2000,
  /** How many ingresses each host attaches to (`--attach`), 1..8. */
  attach: 2,
  /** How long changes of the live ingress set are gathered before a `cluster` message goes out. */
  clusterDebounceMs: 500,
  /** Bytes that may wait unsent towards an ingress (its welcome lists every host). */
  ingressMaxBufferedBytes: 64 * 1024 * 1024,
} as const;

interface Connection {
  readonly id: string;
  readonly role: PeerRole;
  readonly sub: string | undefined;
  /** From the token: what the host may run (protocol/trust.ts). */
  readonly trust: HostTrust;
  /** The remote address of the socket. */
  readonly address: string;
  draining: boolean;
  readonly socket: WebSocket;
  readonly bucket: TokenBucket;
  /** Per signal kind, created on first use (hosts only). */
  readonly signalBuckets: Map<SignalKind, TokenBucket>;
  /** Set by hello; null while awaiting it. */
  info: Record<string, unknown> | null;
  since: number;
  missedPongs: number;
  helloTimer: ReturnType<typeof setTimeout> | null;
  graceTimer: ReturnType<typeof setTimeout> | null;
  /** Set when this side decided to end the connection, so the leave carries the real cause. */
  endReason: LeaveReason | null;
  /** When this peer was last given TURN credentials (ms since the epoch). */
  iceIssuedAt: number;
  /** What a host last reported it has loaded. */
  appStatus: AppStatus[];
  /** A volunteer's end (invite expiry plus grace, ms since the epoch); null for others. */
  expiresAt: number | null;
  expiryTimer: ReturnType<typeof setTimeout> | null;
  /** The presence key (set by hello). */
  key: string | null;
  /** The presence epoch; 0 while registering, or when admitted in island mode (the store was down). */
  epoch: number;
  /** Welcomed: listed in `#joined`, gets join/leave/update/signal. */
  welcomed: boolean;
  /** A `register` call is in flight (the renew loop leaves the peer alone meanwhile). */
  registering: boolean;
  /** Its info or status changed while it was not registered: the store is told once it is. */
  dirty: boolean;
  closed: boolean;
}

export class SignalingHub {
  readonly #options: SignalingHubOptions;
  readonly #log: FastifyBaseLogger;
  readonly #cluster: ClusterParts;
  readonly #directory: Directory;
  /** Every open socket, including those still awaiting hello. */
  readonly #connections = new Set<Connection>();
  /** Local peers that were welcomed, by id. A Map, so hostile ids cannot reach a prototype. */
  readonly #joined = new Map<string, Connection>();
  /** Local peers by presence key (registering or welcomed): the newest hello of a key wins. */
  readonly #byKey = new Map<string, Connection>();
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #renewTimer: ReturnType<typeof setInterval> | null = null;
  #renewing = false;
  /** A renew was asked for while one ran (a new control version to publish): run once more after. */
  #renewAgain = false;
  readonly #checks = new Map<string, PendingCheck>();
  /** Scheduled runs asked of this node's ingresses (cron-dispatch.ts). */
  readonly cronRuns = new CronDispatch({
    local: () => [...this.#joined.values()].filter((c) => c.role === 'ingress' && !c.closed).map((c) => ({ id: c.id, name: hostName(c.info ?? {}, c.id), send: (m: CronMessage) => this.#send(c, m) })),
    remote: () => this.#directory.entries('ingress').filter((e) => e.node !== this.#cluster.nodeId && !e.peer.draining && this.#directory.lookup(e.peer.id)?.live).map((e) => ({ id: e.peer.id, name: hostName(e.peer.info, e.peer.id), node: e.node })),
    bus: (node, m) => this.#cluster.bus.send(node, m),
    nodeId: () => this.#cluster.nodeId,
  });
  readonly #remoteChecks = new Map<string, RemoteCheck>();
  /** Called when a host reports status, joins or leaves (rollouts wait on it). */
  readonly #hostListeners = new Set<() => void>();
  readonly #peerKey: () => string;
  #clusterTimer: ReturnType<typeof setTimeout> | null = null;
  #lastCluster = '';
  #starting: Promise<void> | null = null;
  /** Unregister calls in flight: a node shutting down removes its entries before its parts close. */
  readonly #unregistering = new Set<Promise<void>>();
  #closing = false;

  constructor(options: SignalingHubOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#cluster = options.cluster ?? createMemoryCluster({ nodeId: 'local', region: 'default' });
    const attach = options.attach ?? HUB_CLUSTER_DEFAULTS.attach;
    if (!Number.isInteger(attach) || attach < 1 || attach > 8) throw new RangeError('attach must be an integer from 1 to 8');
    const processKey = randomBytes(32).toString('base64url');
    this.#peerKey = options.peerKey ?? (() => processKey);
    this.#directory = new Directory(this.#cluster.presence, {
      nodeId: this.#cluster.nodeId,
      ...(options.nodeRefreshMs !== undefined ? { nodeRefreshMs: options.nodeRefreshMs } : {}),
      log: (level, message, fields) => this.#log[level]({ ...fields, node: this.#cluster.nodeId }, message),
    });
    this.#directory.onChange((c) => this.#onDirectory(c));
    this.#cluster.bus.onMessage((m, from) => this.#onBus(m, from));
  }

  /** This node's cluster parts (presence, bus, ephemeral state). */
  get cluster(): ClusterParts {
    return this.#cluster;
  }

  /** True once the presence directory is loaded; until then no peer is accepted. */
  get ready(): boolean {
    return this.#directory.ready;
  }

  /**
   * Loads the presence directory (retrying while the store is down) and starts renewing this
   * node's entries. Resolves when the first snapshot is applied.
   */
  start(): Promise<void> {
    this.#starting ??= (async () => {
      for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
        try {
          await this.#directory.start();
          break;
        } catch (err) {
          if (this.#closing) return;
          this.#log.warn({ err: String(err), node: this.#cluster.nodeId }, 'presence store unreachable at start; retrying');
          await new Promise((r) => setTimeout(r, delay).unref?.());
        }
      }
      if (this.#closing) return;
      const every = this.#options.renewIntervalMs ?? HUB_CLUSTER_DEFAULTS.renewIntervalMs;
      this.#renewTimer = setInterval(() => void this.renew(), every);
      this.#renewTimer.unref?.();
    })();
    return this.#starting;
  }

  /** Tells every joined peer the apps' active versions (after a deploy, rollback or delete). */
  broadcastApps(apps: AppRef[]): void {
    for (const conn of this.#joined.values()) this.#send(conn, { type: 'apps', apps: appsFor(conn.trust, apps) });
  }

  /**
   * Has up to two operator hosts of the cluster that can run the app (not volunteers, not
   * drained, with every capability it requires) load the candidate `id` (served at
   * `/v1/checks/:id` on every node), local hosts first, and resolves with the first answer.
   * Hosts on other nodes are asked over the bus. Volunteers are never asked: their answer is not
   * to be trusted, and they may not see an unreleased version.
   */
  checkApp(id: string, app: string, config: AppConfig, timeoutMs: number): Promise<CheckOutcome> {
    const me = this.#cluster.nodeId;
    const eligible = this.#directory
      .entries('host')
      .filter((e) => !e.peer.volunteer && !e.peer.draining && hasCapabilities(e.peer.info, config.require))
      .filter((e) => !this.#leaving(e))
      .sort((a, b) => Number(b.node === me) - Number(a.node === me));
    if (eligible.length === 0) return Promise.resolve({ status: 'skipped' });
    const asked = eligible.slice(0, CHECK_FAN_OUT);
    const names = asked.map((e) => hostName(e.peer.info, e.peer.id));
    return new Promise<CheckOutcome>((resolve) => {
      const pending: PendingCheck = {
        asked: new Set(asked.map((e) => e.peer.id)),
        names,
        timer: setTimeout(() => pending.settle({ status: 'timeout', hosts: names }), timeoutMs),
        settle: (outcome) => {
          if (this.#checks.get(id) !== pending) return;
          this.#checks.delete(id);
          clearTimeout(pending.timer);
          resolve(outcome);
        },
      };
      this.#checks.set(id, pending);
      for (const e of asked) {
        const local = this.#joined.get(e.peer.id);
        if (local) {
          this.#send(local, { type: 'check', id, app, config });
          continue;
        }
        this.#cluster.bus.send(e.node, { v: 1, t: 'check', id, host: e.peer.id, app, config, origin: me }).catch((err: unknown) => {
          this.#log.warn({ err: String(err), node: e.node, check: id }, 'cannot ask a host on another node to check');
          this.#checkAskFailed(id, e.peer.id);
        });
      }
    });
  }

  /** Per app, the hosts of the cluster that report serving, loading or failing each version (`dcdn apps`). */
  appHosts(): Map<string, Array<{ host: string; version: number; state: AppStatus['state'] }>> {
    const out = new Map<string, Array<{ host: string; version: number; state: AppStatus['state'] }>>();
    for (const e of this.#directory.entries('host')) {
      for (const a of e.status ?? []) {
        const list = out.get(a.name) ?? [];
        list.push({ host: hostName(e.peer.info, e.peer.id), version: a.version, state: a.state });
        out.set(a.name, list);
      }
    }
    return out;
  }

  /** The deployed apps' active versions, or null when signaling runs without an app store. */
  deployedApps(): AppRef[] | null {
    return this.#options.apps?.() ?? null;
  }

  /**
   * What each host of the cluster that is sent `app` last reported (volunteers only for the apps
   * they may run): the hosts a rollout of it waits for. Local hosts that are leaving are not counted.
   */
  hostReports(app: AppRef): HostReport[] {
    return this.#directory
      .entries('host')
      .filter((e) => !this.#leaving(e))
      .filter((e) => appsFor(trustOf(e.peer), [app]).length > 0)
      .map((e) => ({ host: hostName(e.peer.info, e.peer.id), apps: e.status ?? [] }));
  }

  /** Whether an entry is this node's peer and that peer is on its way out. */
  #leaving(e: PresenceEntry): boolean {
    if (e.node !== this.#cluster.nodeId) return false;
    const conn = this.#joined.get(e.peer.id);
    return conn === undefined || conn.endReason !== null;
  }

  /** Calls `listener` whenever a host reports status, joins or leaves; returns its remover. */
  onHostChange(listener: () => void): () => void {
    this.#hostListeners.add(listener);
    return () => this.#hostListeners.delete(listener);
  }

  #hostChanged(): void {
    for (const listener of [...this.#hostListeners]) listener();
  }

  /**
   * Volunteers' hosts from one address, cluster-wide: those registered in presence, plus this
   * node's connections that have not registered yet (no hello). Falls back to this node's count
   * when the store is unreachable.
   */
  async volunteersFrom(address: string): Promise<number> {
    let pending = 0;
    let local = 0;
    for (const conn of this.#connections) {
      if (!conn.trust.volunteer || conn.address !== address) continue;
      local++;
      // Registered ones (and those whose registration is in flight) the store counts.
      if (conn.epoch === 0 && !conn.registering) pending++;
    }
    try {
      return pending + (await this.#withTimeout(this.#cluster.presence.countVolunteers(address)));
    } catch {
      return local;
    }
  }

  /** The hosts of the cluster, oldest first. */
  hosts(): HostSummary[] {
    return this.#directory.entries('host').map(toHostSummary);
  }

  /**
   * Drains (or resumes) a host on any node: ingresses send it no new requests and let those in
   * flight end. A host on another node is drained by its node (bus `drain`), and every ingress
   * hears the `update` through presence. Resolves with the host as it will be seen, or null when
   * no host has this signaling id.
   *
   * @throws {SignalingError} SIG_PEER_UNREACHABLE when the host's node cannot be reached.
   */
  async setDraining(id: string, draining: boolean): Promise<HostSummary | null> {
    const local = this.#joined.get(id);
    if (local) {
      if (local.role !== 'host') return null;
      this.#setLocalDraining(local, draining);
      return this.hosts().find((h) => h.id === id) ?? null;
    }
    const found = this.#directory.lookup(id);
    if (!found || found.entry.peer.role !== 'host') return null;
    if (!found.live) throw new SignalingError('SIG_PEER_UNREACHABLE', `the signaling node of host ${id} is not reachable`);
    await this.#sendBus(found.entry.node, { v: 1, t: 'drain', peer: id, draining });
    return { ...toHostSummary(found.entry), draining };
  }

  #setLocalDraining(conn: Connection, draining: boolean): void {
    conn.draining = draining;
    this.#publish(conn, { peer: true });
    this.#log.info({ peer: conn.id, sub: conn.sub, draining }, draining ? 'host drained' : 'host resumed');
  }

  /**
   * Closes a peer's connection with `code` on whichever node holds it (a ban: ingresses close
   * their sessions with it at once, leave reason `banned`). Resolves false when no peer has this id.
   *
   * @throws {SignalingError} SIG_PEER_UNREACHABLE when the peer's node cannot be reached.
   */
  async kick(peerId: string, code: SignalingErrorCode, message: string): Promise<boolean> {
    const local = this.#joined.get(peerId);
    if (local) {
      this.#fail(local, code, message);
      return true;
    }
    const found = this.#directory.lookup(peerId);
    if (!found) return false;
    if (!found.live) throw new SignalingError('SIG_PEER_UNREACHABLE', `the signaling node of peer ${peerId} is not reachable`);
    await this.#sendBus(found.entry.node, { v: 1, t: 'kick', peer: peerId, code, message });
    return true;
  }

  /** Disconnects a host that was just banned, on any node. Resolves false when no host has this id. */
  async disconnectBanned(id: string, reason: string): Promise<boolean> {
    const found = this.#joined.get(id)?.role ?? this.#directory.lookup(id)?.entry.peer.role;
    if (found !== 'host') return false;
    return this.kick(id, 'SIG_BANNED', `banned by the operator${reason ? `: ${reason}` : ''}`);
  }

  /** Takes ownership of an upgraded socket whose token has been verified. */
  accept(socket: WebSocket, identity: { role: PeerRole; sub?: string | undefined; scope?: string[] | undefined; address?: string; exp?: number }): void {
    const trust = identity.role === 'host' ? trustFromScope(identity.scope) : OPERATOR_TRUST;
    // Operators' hosts and ingresses are the operator's own (dcdn up mints them week-long
    // tokens baked into the page URL): their expiry is checked when they connect. A volunteer's
    // invite also ends the connection it opened.
    const expiresAt = trust.volunteer && identity.exp !== undefined ? identity.exp * 1000 + (this.#options.inviteGraceMs ?? INVITE_GRACE_MS) : null;
    const conn: Connection = {
      id: randomUUID(),
      role: identity.role,
      sub: identity.sub,
      trust,
      address: identity.address ?? '',
      draining: false,
      socket,
      bucket: new TokenBucket(this.#options.rateLimit),
      signalBuckets: new Map(),
      info: null,
      since: Date.now(),
      missedPongs: 0,
      helloTimer: null,
      graceTimer: null,
      endReason: null,
      iceIssuedAt: 0,
      appStatus: [],
      expiresAt,
      expiryTimer: null,
      key: null,
      epoch: 0,
      welcomed: false,
      registering: false,
      dirty: false,
      closed: false,
    };
    this.#connections.add(conn);
    if (expiresAt !== null) this.#armExpiry(conn);
    conn.helloTimer = setTimeout(() => {
      this.#fail(conn, 'SIG_HELLO_TIMEOUT', `no hello within ${this.#options.helloTimeoutMs} ms`);
    }, this.#options.helloTimeoutMs);

    socket.on('message', (data, isBinary) => this.#onMessage(conn, data, isBinary));
    // Pings are answered by ws itself, so they count against the same budget as messages.
    socket.on('ping', () => {
      if (conn.endReason === null && !conn.bucket.take()) this.#fail(conn, 'SIG_RATE_LIMITED', 'too many frames');
    });
    socket.on('pong', () => {
      conn.missedPongs = 0;
    });
    // ws has already started the close (1009 for maxPayload, 1002/1007 for framing) when this fires.
    socket.on('error', (err: Error & { code?: string }) => {
      conn.endReason ??= err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'SIG_MESSAGE_TOO_LARGE' : 'protocol-error';
    });
    socket.on('close', (code) => this.#onClose(conn, code));
    this.#log.debug({ peer: conn.id, role: conn.role, sub: conn.sub }, 'signaling connection opened');
  }

  /** Peers of the whole cluster, oldest first. */
  peers(): PeerInfo[] {
    return this.#directory.entries().map((e) => this.#render(e));
  }

  /** Peers welcomed on this node (metrics are per node). */
  localPeers(): PeerInfo[] {
    return [...this.#joined.values()].map((c) => toPeerInfo(c));
  }

  /** Hosts and ingresses of the whole cluster. */
  counts(): { hosts: number; ingresses: number } {
    const all = this.#directory.entries();
    const hosts = all.filter((e) => e.peer.role === 'host').length;
    return { hosts, ingresses: all.length - hosts };
  }

  /** Live signaling nodes: id, region and how many peers each holds. */
  nodes(): Array<{ id: string; region: string; peers: number }> {
    return this.#directory.nodes().map((n) => (n.id === this.#cluster.nodeId && !n.region ? { ...n, region: this.#cluster.region } : n));
  }

  /** Starts pinging; a socket that missed the pongs of two intervals is terminated. */
  startHeartbeat(): void {
    if (this.#heartbeat !== null) return;
    this.#heartbeat = setInterval(() => this.#beat(), this.#options.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  /**
   * Renews this node's presence entries (run every `renewIntervalMs`). A key fenced by a newer
   * registration closes its local peer with SIG_DUPLICATE_PEER; a missing key (the store lost
   * it, or this node was taken for dead) is reclaimed, as is every peer admitted in island mode.
   */
  async renew(): Promise<void> {
    if (this.#closing) return;
    if (this.#renewing) {
      this.#renewAgain = true;
      return;
    }
    this.#renewing = true;
    try {
      const own: Array<{ key: string; epoch: number }> = [];
      const island: Connection[] = [];
      /** Who held each key when the renew was sent: a newer local hello meanwhile is not what the answer is about. */
      const sent = new Map<string, { conn: Connection; epoch: number }>();
      for (const conn of this.#byKey.values()) {
        if (!conn.welcomed || conn.registering || conn.endReason !== null) continue;
        if (conn.epoch === 0) island.push(conn);
        else {
          own.push({ key: conn.key!, epoch: conn.epoch });
          sent.set(conn.key!, { conn, epoch: conn.epoch });
        }
      }
      const still = (key: string): Connection | undefined => {
        const s = sent.get(key);
        return s && s.conn.epoch === s.epoch && this.#byKey.get(key) === s.conn ? s.conn : undefined;
      };
      let result: { fenced: string[]; missing: string[]; genChanged: boolean };
      try {
        result = await this.#withTimeout(this.#cluster.presence.renew(own, { cv: this.#options.controlVersion?.() ?? 0, peers: this.#joined.size }));
      } catch (err) {
        this.#log.warn({ err: String(err), node: this.#cluster.nodeId }, 'presence renew failed: serving local peers (island mode)');
        return;
      }
      for (const key of result.fenced) {
        const conn = still(key);
        if (conn) this.#fail(conn, 'SIG_DUPLICATE_PEER', 'a newer connection registered this id');
      }
      const reclaim = new Set(island);
      for (const key of result.missing) {
        const conn = still(key);
        if (conn) reclaim.add(conn);
      }
      if (result.genChanged) for (const conn of this.#byKey.values()) if (conn.welcomed) reclaim.add(conn);
      for (const conn of reclaim) await this.#reclaim(conn);
      // A fenced key's new owner, or entries written while this node was an island, may have
      // reached the store without reaching this node's feed.
      if (result.genChanged || island.length > 0 || result.fenced.length > 0) await this.#directory.resync().catch((err: unknown) => this.#log.warn({ err: String(err) }, 'presence resync failed'));
    } finally {
      this.#renewing = false;
      if (this.#renewAgain) {
        this.#renewAgain = false;
        void this.renew();
      }
    }
  }

  async #reclaim(conn: Connection): Promise<void> {
    if (conn.endReason !== null || conn.key === null) return;
    let got: { epoch: number } | null;
    try {
      got = await this.#withTimeout(this.#cluster.presence.reclaim(this.#entryFor(conn)));
    } catch (err) {
      this.#log.warn({ err: String(err), peer: conn.id }, 'presence reclaim failed');
      return;
    }
    if (conn.endReason !== null || conn.closed) {
      if (got) this.#unregister(conn.key, got.epoch, conn.endReason ?? 'closed', conn.id);
      return;
    }
    if (got === null) return this.#fail(conn, 'SIG_DUPLICATE_PEER', 'a newer connection registered this id');
    conn.epoch = got.epoch;
    conn.dirty = false;
    this.#directory.localJoin({ ...this.#entryFor(conn), epoch: got.epoch });
    this.#log.info({ peer: conn.id, key: conn.key, epoch: got.epoch }, 'presence entry reclaimed');
  }

  /** Closes every socket with 1001, destroying those that do not finish within `graceMs`. */
  async close(graceMs: number = CLOSE_GRACE_MS): Promise<void> {
    this.#closing = true;
    this.cronRuns.close();
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    if (this.#renewTimer !== null) clearInterval(this.#renewTimer);
    this.#renewTimer = null;
    if (this.#clusterTimer !== null) clearTimeout(this.#clusterTimer);
    this.#clusterTimer = null;
    for (const r of this.#remoteChecks.values()) clearTimeout(r.timer);
    this.#remoteChecks.clear();
    const closed = [...this.#connections].map((conn) => {
      conn.endReason ??= 'shutdown';
      return new Promise<void>((resolve) => {
        if (conn.socket.readyState === WebSocket.CLOSED) return resolve();
        conn.socket.once('close', () => resolve());
        conn.socket.close(1001, 'shutdown');
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(closed), deadline]);
    clearTimeout(timer);
    for (const conn of this.#connections) conn.socket.terminate();
    await Promise.all(closed);
    await Promise.all([...this.#unregistering]);
    this.#directory.close();
  }

  #beat(): void {
    // Credentials are refreshed at half-life, on the heartbeat's tick: a tab stays for days, and
    // a connection it answers after its TURN credentials expired could not allocate a relay.
    const refreshAfterMs = this.#options.ice?.refreshAfterMs ?? null;
    const now = Date.now();
    for (const conn of this.#connections) {
      if (refreshAfterMs !== null && conn.welcomed && conn.endReason === null && now - conn.iceIssuedAt >= refreshAfterMs) {
        const iceServers = this.#iceFor(conn);
        if (iceServers) this.#send(conn, { type: 'ice', iceServers });
      }
      if (conn.missedPongs >= 2) {
        conn.endReason ??= 'heartbeat-timeout';
        conn.socket.terminate();
        continue;
      }
      conn.missedPongs += 1;
      if (conn.socket.readyState === WebSocket.OPEN) conn.socket.ping();
    }
  }

  #onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    // Frames that arrive after we decided to close are dropped unread.
    if (conn.endReason !== null) return;
    if (!conn.bucket.take()) return this.#fail(conn, 'SIG_RATE_LIMITED', 'too many messages');
    if (isBinary) return this.#fail(conn, 'SIG_BAD_MESSAGE', 'binary frames are not accepted');
    const result = parseClientMessage(rawToText(data));
    if (!result.ok) return this.#fail(conn, 'SIG_BAD_MESSAGE', result.reason);
    const message = result.message;
    if (conn.info === null) {
      if (message.type !== 'hello') return this.#fail(conn, 'SIG_BAD_MESSAGE', 'the first message must be hello');
      const info = conn.trust.volunteer ? namespaceVolunteer(message.info, conn) : message.info;
      if (conn.role === 'host' && this.#options.isBanned) {
        const hostId = typeof info['hostId'] === 'string' ? info['hostId'] : '';
        const reason = this.#options.isBanned({ hostId, address: conn.address, sub: conn.sub });
        if (reason !== null) return this.#fail(conn, 'SIG_BANNED', `this host is banned${reason ? `: ${reason}` : ''}`);
      }
      return this.#join(conn, info);
    }
    if (message.type === 'hello') return this.#fail(conn, 'SIG_BAD_MESSAGE', 'hello was already sent');
    if (message.type === 'ping') return this.#send(conn, { type: 'pong' });
    if (message.type === 'checked') return this.#onChecked(conn, message);
    if (message.type === 'cron-result') return conn.role === 'ingress' ? this.cronRuns.onResult(conn.id, message) : this.#fail(conn, 'SIG_BAD_MESSAGE', 'only ingresses answer cron runs');
    if (message.type === 'status') {
      if (conn.role !== 'host') return this.#fail(conn, 'SIG_BAD_MESSAGE', 'only hosts report status');
      conn.appStatus = message.apps;
      this.#publish(conn, { status: true });
      return;
    }
    this.#relay(conn, message);
  }

  /** A host's answer to a check: only a host that was asked may answer it; late answers are dropped. */
  #onChecked(conn: Connection, message: CheckedMessage): void {
    if (conn.role !== 'host') return this.#fail(conn, 'SIG_BAD_MESSAGE', 'only hosts answer checks');
    const pending = this.#checks.get(message.id);
    if (pending?.asked.has(conn.id)) {
      const host = hostName(conn.info ?? {}, conn.id);
      pending.settle(message.ok ? { status: 'ok', host, ms: message.ms } : { status: 'failed', host, error: message.error || 'unknown error', ms: message.ms });
      return;
    }
    const remote = this.#remoteChecks.get(message.id);
    if (!remote || remote.host !== conn.id) return;
    this.#remoteChecks.delete(message.id);
    clearTimeout(remote.timer);
    this.#cluster.bus.send(remote.origin, { v: 1, t: 'checked', id: message.id, host: conn.id, ok: message.ok, error: message.error, ms: message.ms }).catch((err: unknown) => {
      this.#log.warn({ err: String(err), node: remote.origin, check: message.id }, 'cannot return a check result to its node');
    });
  }

  #checkAskFailed(id: string, host: string): void {
    const pending = this.#checks.get(id);
    if (pending && pending.asked.delete(host) && pending.asked.size === 0) pending.settle({ status: 'timeout', hosts: pending.names });
  }

  /**
   * Welcomes a peer that said hello, from the directory, and registers it in presence in the
   * background: the newest registration of a key wins (an older local connection with the key is
   * closed now with SIG_DUPLICATE_PEER, one on another node when its node sees the registration).
   * The peer is admitted before the store answers, so a store that is down leaves it admitted
   * locally (island mode) until the renew loop reclaims its key.
   */
  #join(conn: Connection, info: Record<string, unknown>): void {
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    conn.info = info;
    conn.since = Date.now();
    const key = presenceKey(toPeerInfo(conn));
    conn.key = key;
    // An older local connection with this key is stale: the tab reconnected, or was duplicated.
    const older = this.#byKey.get(key);
    this.#byKey.set(key, conn);
    if (older && older !== conn) {
      this.#log.warn({ key, peer: older.id, by: conn.id, address: older.address, byAddress: conn.address }, 'duplicate peer id: the newer connection wins');
      this.#fail(older, 'SIG_DUPLICATE_PEER', 'a newer connection registered this id');
    }
    this.#directory.localJoin({ ...this.#entryFor(conn), epoch: PENDING_EPOCH });
    this.#joined.set(conn.id, conn);
    conn.welcomed = true;
    const others = this.#directory.entries(conn.role === 'host' ? 'ingress' : 'host').map((e) => this.#render(e));
    const iceServers = this.#iceFor(conn);
    const first = others.slice(0, PEERS_CHUNK);
    this.#send(conn, { type: 'welcome', id: conn.id, role: conn.role, peers: first, ...(iceServers ? { iceServers } : {}), ...(others.length > PEERS_CHUNK ? { more: true as const } : {}) });
    if (others.length > PEERS_CHUNK) this.#sendPeers(conn, others);
    if (this.#options.apps) this.#send(conn, { type: 'apps', apps: appsFor(conn.trust, this.#options.apps()) });
    if (conn.role === 'ingress') this.#send(conn, this.#clusterMessage());
    this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, volunteer: conn.trust.volunteer || undefined, address: conn.address, key }, 'peer joined');
    void this.#register(conn);
  }

  async #register(conn: Connection): Promise<void> {
    const key = conn.key!;
    conn.registering = true;
    let registered: { epoch: number; replaced?: { peer: string; node: string } };
    try {
      const volunteerCap = conn.trust.volunteer ? this.#options.volunteerCap : undefined;
      registered = await this.#withTimeout(this.#cluster.presence.register(this.#entryFor(conn), volunteerCap !== undefined ? { volunteerCap } : {}));
    } catch (err) {
      if (err instanceof PresenceLimitError) return this.#fail(conn, 'SIG_RATE_LIMITED', err.message);
      this.#log.warn({ err: String(err), peer: conn.id, key }, 'presence store unreachable: the peer is admitted locally (island mode)');
      return;
    } finally {
      conn.registering = false;
    }
    if (conn.closed || conn.endReason !== null || this.#byKey.get(key) !== conn) {
      this.#unregister(key, registered.epoch, conn.endReason ?? 'closed', conn.id);
      return;
    }
    conn.epoch = registered.epoch;
    if (conn.dirty) {
      conn.dirty = false;
      this.#publish(conn, { peer: true, status: true });
    }
    if (registered.replaced && registered.replaced.node !== this.#cluster.nodeId) {
      this.#log.info({ key, peer: conn.id, replaced: registered.replaced.peer, node: registered.replaced.node }, 'took over a registration from another node');
    }
    // A registration on another node that came after ours already reached the directory.
    if (!this.#directory.localJoin({ ...this.#entryFor(conn), epoch: conn.epoch })) this.#fail(conn, 'SIG_DUPLICATE_PEER', 'a newer connection registered this id');
  }

  /** The whole list, in chunks: what a welcome with `more` continues with, and a resync. */
  #sendPeers(conn: Connection, peers: PeerInfo[]): void {
    if (peers.length === 0) return this.#send(conn, { type: 'peers', peers: [], done: true });
    for (let i = 0; i < peers.length; i += PEERS_CHUNK) {
      this.#send(conn, { type: 'peers', peers: peers.slice(i, i + PEERS_CHUNK), done: i + PEERS_CHUNK >= peers.length });
    }
  }

  /** Writes a local peer's changed info or status to presence and the directory. */
  #publish(conn: Connection, what: { peer?: true; status?: true }): void {
    if (conn.key === null || !conn.welcomed) return;
    const entry = { ...this.#entryFor(conn), epoch: conn.epoch || PENDING_EPOCH };
    this.#directory.localUpdate(entry);
    if (conn.epoch === 0) {
      // Sent once the registration is confirmed (or with the reclaim).
      conn.dirty = true;
      return;
    }
    const patch = { ...(what.peer ? { peer: entry.peer } : {}), ...(what.status ? { status: entry.status ?? [] } : {}) };
    this.#withTimeout(this.#cluster.presence.update(conn.key, conn.epoch, patch)).catch((err: unknown) => {
      this.#log.warn({ err: String(err), peer: conn.id }, 'presence update failed (renew will reclaim)');
    });
  }

  /** The presence entry of a local peer that said hello (epoch filled in by the caller). */
  #entryFor(conn: Connection): Omit<PresenceEntry, 'epoch'> {
    const info = conn.info ?? {};
    const ownRegion = conn.role === 'ingress' && typeof info['region'] === 'string' && info['region'] && info['region'].length <= 64 ? info['region'] : this.#cluster.region;
    return {
      key: conn.key!,
      node: this.#cluster.nodeId,
      region: ownRegion,
      peer: toPeerInfo(conn),
      address: conn.address,
      ...(conn.role === 'host' ? { status: conn.appStatus } : {}),
    };
  }

  /** A peer as other peers see it: in cluster mode with its node and region. */
  #render(e: PresenceEntry): PeerInfo {
    if (this.#cluster.kind === 'memory') return e.peer;
    return { ...e.peer, node: e.node, region: e.region };
  }

  #onDirectory(c: DirectoryChange): void {
    if (c.t === 'reset') {
      for (const conn of this.#joined.values()) {
        this.#sendPeers(conn, this.#directory.entries(conn.role === 'host' ? 'ingress' : 'host').map((e) => this.#render(e)));
      }
      for (const [id, pending] of this.#checks) for (const host of [...pending.asked]) if (!this.#directory.lookup(host)?.live) this.#checkAskFailed(id, host);
      this.#hostChanged();
      this.#scheduleCluster();
      // The store answers again (the view was rebuilt from it): renew now, not at the next tick
      // (up to renewIntervalMs later): leases that ran on during the outage are renewed, keys
      // lost are reclaimed, and peers admitted as an island registered, so the other nodes list
      // them within the convergence bound. A renew in flight does all that itself (its own
      // resync comes back here while it runs, so this never loops).
      if (!this.#renewing) void this.renew();
      return;
    }
    if (c.t === 'fenced') {
      const conn = this.#joined.get(c.entry.peer.id);
      if (conn) {
        this.#log.warn({ key: c.entry.key, peer: conn.id, by: c.by.peer.id, node: c.by.node, address: conn.address, byAddress: c.by.address }, 'duplicate peer id: a newer connection on another node wins');
        this.#fail(conn, 'SIG_DUPLICATE_PEER', 'a newer connection registered this id');
      }
      return;
    }
    const role = c.entry.peer.role;
    let message: ServerMessage | null = null;
    if (c.t === 'join') message = { type: 'join', peer: this.#render(c.entry) };
    else if (c.t === 'leave') message = { type: 'leave', id: c.entry.peer.id, reason: c.reason as LeaveReason };
    else if (JSON.stringify(c.prev.peer) !== JSON.stringify(c.entry.peer) || c.prev.region !== c.entry.region) message = { type: 'update', peer: this.#render(c.entry) };
    if (message !== null) for (const other of this.#joined.values()) if (other.role !== role && other.id !== c.entry.peer.id) this.#send(other, message);
    if (c.t === 'leave' && role === 'host') for (const id of [...this.#checks.keys()]) this.#checkAskFailed(id, c.entry.peer.id);
    if (c.t === 'leave' && role === 'ingress') this.cronRuns.ingressGone(c.entry.peer.id);
    if (role === 'host') this.#hostChanged();
    else this.#scheduleCluster();
  }

  /** What ingresses are told of each other (placement and forwarding, docs/cluster.md). */
  #clusterMessage(): ServerMessage {
    const ingresses: ClusterIngress[] = this.#directory.entries('ingress').map((e) => {
      const info = e.peer.info;
      const name = typeof info['name'] === 'string' && info['name'] && info['name'].length <= 128 ? info['name'] : e.peer.id;
      const weight = typeof info['weight'] === 'number' && Number.isFinite(info['weight']) && info['weight'] > 0 ? info['weight'] : 1;
      const peerUrl = typeof info['peerUrl'] === 'string' && info['peerUrl'].length <= 2048 ? info['peerUrl'] : undefined;
      return { name, region: e.region.slice(0, 64), weight, draining: e.peer.draining === true, ...(peerUrl ? { peerUrl } : {}) };
    });
    return { type: 'cluster', ingresses, attach: this.#options.attach ?? HUB_CLUSTER_DEFAULTS.attach, peerKey: this.#peerKey(), region: this.#cluster.region };
  }

  /** Sends the `cluster` message to local ingresses once changes settle, if the set changed. */
  #scheduleCluster(): void {
    if (this.#clusterTimer !== null || this.#closing) return;
    this.#clusterTimer = setTimeout(() => {
      this.#clusterTimer = null;
      const message = this.#clusterMessage();
      const text = JSON.stringify(message);
      if (text === this.#lastCluster) return;
      this.#lastCluster = text;
      for (const conn of this.#joined.values()) if (conn.role === 'ingress') this.#send(conn, message);
    }, this.#options.clusterDebounceMs ?? HUB_CLUSTER_DEFAULTS.clusterDebounceMs);
    this.#clusterTimer.unref?.();
  }

  /** The peer's ICE servers with fresh TURN credentials, or undefined when none are configured. */
  #iceFor(conn: Connection): IceServer[] | undefined {
    conn.iceIssuedAt = Date.now();
    return this.#options.ice?.forPeer(conn.id);
  }

  #relay(conn: Connection, message: SignalRequest): void {
    if (conn.role === 'host') {
      const kind = signalKind(message.data);
      let bucket = conn.signalBuckets.get(kind);
      if (!bucket) {
        bucket = new TokenBucket(this.#options.signalRateLimits?.[kind] ?? SIGNAL_RATE_DEFAULTS[kind]);
        conn.signalBuckets.set(kind, bucket);
      }
      if (!bucket.take()) return this.#fail(conn, 'SIG_RATE_LIMITED', `too many ${kind} signals`);
    }
    const unknown = () => this.#send(conn, { type: 'error', code: 'SIG_UNKNOWN_PEER', message: 'no such peer of the other role', to: message.to });
    // A local target takes today's path, which works with the presence store down.
    const target = this.#joined.get(message.to);
    if (target !== undefined) {
      // Same-role targets get the same answer as unknown ones: hosts must not learn of each other.
      if (target.role === conn.role) return unknown();
      this.#send(target, { type: 'signal', from: conn.id, data: message.data });
      this.#options.onrelay?.();
      return;
    }
    const found = this.#directory.lookup(message.to);
    if (!found || found.entry.peer.role === conn.role || found.entry.node === this.#cluster.nodeId) return unknown();
    const unreachable = () => this.#send(conn, { type: 'error', code: 'SIG_PEER_UNREACHABLE', message: 'the peer is on a signaling node that cannot be reached now', to: message.to });
    if (!found.live) return unreachable();
    this.#cluster.bus.send(found.entry.node, { v: 1, t: 'signal', from: conn.id, to: message.to, data: message.data }).then(
      () => this.#options.onrelay?.(),
      (err: unknown) => {
        this.#log.warn({ err: String(err), node: found.entry.node, peer: conn.id }, 'cannot relay a signal to another node');
        unreachable();
      },
    );
  }

  /** Messages from other signaling nodes (unknown types are ignored: mixed versions during upgrades). */
  #onBus(m: BusMessage, from: string): void {
    if (m.v !== 1) return;
    switch (m.t) {
      case 'signal': {
        const target = this.#joined.get(m.to);
        if (!target || target.endReason !== null) {
          void this.#cluster.bus.send(from, { v: 1, t: 'unreachable', to: m.from, peer: m.to }).catch(() => {});
          return;
        }
        this.#send(target, { type: 'signal', from: m.from, data: m.data });
        return;
      }
      case 'unreachable': {
        const conn = this.#joined.get(m.to);
        if (conn) this.#send(conn, { type: 'error', code: 'SIG_UNKNOWN_PEER', message: 'no such peer of the other role', to: m.peer });
        return;
      }
      case 'cron':
      case 'cron-result':
        return this.cronRuns.onBus(m);
      case 'check': {
        const host = this.#joined.get(m.host);
        if (!host || host.role !== 'host' || host.endReason !== null) return;
        const old = this.#remoteChecks.get(m.id);
        if (old) clearTimeout(old.timer);
        const timer = setTimeout(() => this.#remoteChecks.delete(m.id), REMOTE_CHECK_TTL_MS);
        timer.unref?.();
        this.#remoteChecks.set(m.id, { origin: m.origin, host: m.host, timer });
        this.#send(host, { type: 'check', id: m.id, app: m.app, config: m.config });
        return;
      }
      case 'checked': {
        const pending = this.#checks.get(m.id);
        if (!pending?.asked.has(m.host)) return;
        const entry = this.#directory.lookup(m.host)?.entry;
        const host = entry ? hostName(entry.peer.info, m.host) : m.host;
        pending.settle(m.ok ? { status: 'ok', host, ms: m.ms } : { status: 'failed', host, error: m.error || 'unknown error', ms: m.ms });
        return;
      }
      case 'kick': {
        const conn = this.#joined.get(m.peer);
        if (conn) this.#fail(conn, m.code, m.message);
        return;
      }
      case 'drain': {
        const conn = this.#joined.get(m.peer);
        if (conn && conn.role === 'host') this.#setLocalDraining(conn, m.draining);
        return;
      }
    }
  }

  async #sendBus(node: string, m: BusMessage): Promise<void> {
    try {
      await this.#cluster.bus.send(node, m);
    } catch (err) {
      throw new SignalingError('SIG_PEER_UNREACHABLE', `signaling node ${node} cannot be reached: ${String(err)}`);
    }
  }

  /** Removes a registration (if still current); `close()` waits for those in flight. */
  #unregister(key: string, epoch: number, reason: string, peer: string): void {
    const done = this.#withTimeout(this.#cluster.presence.unregister(key, epoch, reason)).then(
      () => {},
      (err: unknown) => this.#log.warn({ err: String(err), peer, key }, 'presence unregister failed (the entry will expire)'),
    );
    this.#unregistering.add(done);
    void done.finally(() => this.#unregistering.delete(done));
  }

  /** A presence call that takes longer than `presenceTimeoutMs` counts as the store being down. */
  #withTimeout<T>(p: Promise<T>): Promise<T> {
    const ms = this.#options.presenceTimeoutMs ?? HUB_CLUSTER_DEFAULTS.presenceTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new PresenceUnavailableError(`the presence store did not answer within ${ms} ms`)), ms);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  #send(conn: Connection, message: ServerMessage): void {
    if (conn.socket.readyState !== WebSocket.OPEN) return;
    // A peer that stops reading would make us buffer everything relayed to it. Ingresses get a
    // larger allowance: their welcome lists every host of the cluster.
    const limit = conn.role === 'ingress' ? (this.#options.ingressMaxBufferedBytes ?? HUB_CLUSTER_DEFAULTS.ingressMaxBufferedBytes) : this.#options.maxBufferedBytes;
    if (conn.socket.bufferedAmount > limit) {
      conn.endReason ??= 'slow-consumer';
      conn.socket.terminate();
      return;
    }
    conn.socket.send(JSON.stringify(message));
  }

  /** Reports `code` to the peer and closes with the code's close code. */
  #fail(conn: Connection, code: SignalingErrorCode, message: string): void {
    if (conn.endReason !== null) return;
    conn.endReason = code === 'SIG_BANNED' ? 'banned' : code === 'SIG_TOKEN_EXPIRED' ? 'expired' : code === 'SIG_DUPLICATE_PEER' ? 'replaced' : (code as LeaveReason);
    this.#options.onfail?.(code);
    this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, code, detail: message }, 'closing peer connection');
    this.#send(conn, { type: 'error', code, message });
    const entry: { closeCode?: number } = SIGNALING_ERRORS[code];
    if (conn.socket.readyState === WebSocket.OPEN) conn.socket.close(entry.closeCode ?? 1008, code);
    conn.graceTimer = setTimeout(() => conn.socket.terminate(), CLOSE_GRACE_MS);
    conn.graceTimer.unref();
  }

  /** Disconnects a volunteer when its invite (plus grace) runs out; long waits are re-armed. */
  #armExpiry(conn: Connection): void {
    const left = conn.expiresAt! - Date.now();
    if (left <= 0) return this.#fail(conn, 'SIG_TOKEN_EXPIRED', `the invite expired at ${new Date(conn.expiresAt! - (this.#options.inviteGraceMs ?? INVITE_GRACE_MS)).toISOString()}`);
    conn.expiryTimer = setTimeout(() => this.#armExpiry(conn), Math.min(left, MAX_TIMER_MS));
    conn.expiryTimer.unref?.();
  }

  #onClose(conn: Connection, code: number): void {
    conn.closed = true;
    this.#connections.delete(conn);
    if (conn.expiryTimer !== null) clearTimeout(conn.expiryTimer);
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    if (conn.graceTimer !== null) clearTimeout(conn.graceTimer);
    const reason: LeaveReason = conn.endReason ?? 'closed';
    conn.endReason = reason;
    if (conn.key !== null && this.#byKey.get(conn.key) === conn) this.#byKey.delete(conn.key);
    if (!conn.welcomed) {
      this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, code, reason }, 'connection closed before hello');
      return;
    }
    this.#joined.delete(conn.id);
    if (conn.role === 'ingress') this.cronRuns.ingressGone(conn.id);
    // The directory sends the leave to local peers; a replaced peer's entry is already the newer one's.
    this.#directory.localLeave(conn.key!, conn.id, reason);
    if (conn.epoch !== 0) this.#unregister(conn.key!, conn.epoch, reason, conn.id);
    this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, code, reason }, 'peer left');
  }
}

/**
 * A volunteer's hello with its id and name namespaced by its invite (trust.ts): what it chose
 * is kept only behind `vol-<invite>-`, so it cannot take an operator host's identity, and a ban
 * of it lands on its own id.
 */
function namespaceVolunteer(info: Record<string, unknown>, conn: Pick<Connection, 'id' | 'sub'>): Record<string, unknown> {
  const tabId = typeof info['hostId'] === 'string' && info['hostId'] ? info['hostId'] : conn.id;
  const name = typeof info['name'] === 'string' && info['name'] ? info['name'] : tabId.slice(0, 8);
  return { ...info, hostId: volunteerHostId(conn.sub, tabId), name: volunteerName(name) };
}

function signalKind(data: unknown): SignalKind {
  const kind = typeof data === 'object' && data !== null ? (data as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' && SIGNAL_KINDS.has(kind) ? (kind as SignalKind) : 'other';
}

function hostName(info: Record<string, unknown>, id: string): string {
  const name = info['name'];
  return typeof name === 'string' && name ? name.slice(0, 64) : id;
}

function hasCapabilities(info: Record<string, unknown>, required: readonly string[]): boolean {
  const caps = info['capabilities'];
  return required.every((r) => Array.isArray(caps) && caps.includes(r));
}

/** What a local peer is, as presence stores it (without node and region: entries carry those). */
function toPeerInfo(conn: Connection): PeerInfo {
  const peer: PeerInfo = { id: conn.id, role: conn.role, info: conn.info ?? {}, since: conn.since };
  if (conn.sub !== undefined) peer.sub = conn.sub;
  if (conn.trust.volunteer) {
    peer.volunteer = true;
    if (conn.trust.apps) peer.apps = [...conn.trust.apps];
  }
  if (conn.draining) peer.draining = true;
  if (conn.expiresAt !== null) peer.expiresAt = conn.expiresAt;
  return peer;
}

/** A peer's trust as its PeerInfo tells it (any node's peer). */
function trustOf(peer: PeerInfo): HostTrust {
  return { volunteer: peer.volunteer === true, apps: peer.apps ? [...peer.apps] : null };
}

/** What a peer is told is deployed: a volunteer's host hears only of the apps it may run. */
function appsFor(trust: HostTrust, apps: AppRef[]): AppRef[] {
  return trust.volunteer ? apps.filter((a) => mayRun(trust, a)) : apps;
}

function toHostSummary(e: PresenceEntry): HostSummary {
  const { peer } = e;
  const info = peer.info;
  const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 256) : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const caps = Array.isArray(info['capabilities']) ? info['capabilities'].filter((c): c is string => typeof c === 'string').slice(0, 16) : [];
  return {
    id: peer.id,
    hostId: str(info['hostId']) ?? '',
    name: str(info['name']) ?? '',
    sub: peer.sub ?? null,
    volunteer: peer.volunteer === true,
    apps: peer.apps ? [...peer.apps] : null,
    draining: peer.draining === true,
    address: e.address,
    since: new Date(peer.since).toISOString(),
    userAgent: str(info['userAgent']),
    cores: num(info['cores']),
    memoryGiB: num(info['memoryGiB']),
    capabilities: caps,
    node: e.node,
    region: e.region,
  };
}

function rawToText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
