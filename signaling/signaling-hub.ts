/**
 * The signaling state machine: accepted sockets, presence, relaying, limits and reaping.
 *
 * It knows `ws` sockets but not HTTP: authentication happens before the upgrade (server.ts), so
 * every socket handed to {@link SignalingHub.accept} already has a verified role.
 *
 * Per connection: `awaiting-hello` (hello timer running, not listed) → `joined` (listed, gets
 * join/leave/signal) → closed. Any protocol violation sends one `error` message and closes with
 * the code's close code; a socket that does not finish the close handshake is destroyed after
 * {@link CLOSE_GRACE_MS}.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { WebSocket, type RawData } from 'ws';
import { SIGNALING_ERRORS, type SignalingErrorCode } from '../protocol/index.ts';
import type { AppConfig } from '../protocol/index.ts';
import { parseClientMessage, type AppRef, type LeaveReason, type AppStatus, type CheckedMessage, type IceServer, type PeerInfo, type PeerRole, type ServerMessage, type SignalRequest } from '../protocol/index.ts';
import type { HostReport } from './rollout.ts';
import { TokenBucket } from './token-bucket.ts';
import { mayRun, OPERATOR_TRUST, trustFromScope, volunteerHostId, volunteerName, type HostTrust } from '../protocol/index.ts';
import { INVITE_GRACE_MS } from './invite-grace.ts';

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
  readonly asked: Set<Connection>;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly names: string[];
  settle(outcome: CheckOutcome): void;
}

/** How many hosts load a candidate at once; the first answer decides. */
const CHECK_FAN_OUT = 2;

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
}

export class SignalingHub {
  readonly #options: SignalingHubOptions;
  readonly #log: FastifyBaseLogger;
  /** Every open socket, including those still awaiting hello. */
  readonly #connections = new Set<Connection>();
  /** Peers that said hello, by id. A Map, so hostile ids cannot reach a prototype. */
  readonly #joined = new Map<string, Connection>();
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  readonly #checks = new Map<string, PendingCheck>();
  /** Called when a host reports status, joins or leaves (rollouts wait on it). */
  readonly #hostListeners = new Set<() => void>();

  constructor(options: SignalingHubOptions) {
    this.#options = options;
    this.#log = options.log;
  }

  /** Tells every joined peer the apps' active versions (after a deploy, rollback or delete). */
  broadcastApps(apps: AppRef[]): void {
    for (const conn of this.#joined.values()) this.#send(conn, { type: 'apps', apps: appsFor(conn, apps) });
  }

  /**
   * Has up to two connected operator hosts that can run the app (not volunteers, not drained,
   * with every capability it requires) load the candidate `id` (served at `/v1/checks/:id`),
   * and resolves with the first answer. Volunteers are never asked: their answer is not to be
   * trusted, and they may not see an unreleased version.
   */
  checkApp(id: string, app: string, config: AppConfig, timeoutMs: number): Promise<CheckOutcome> {
    const eligible = [...this.#joined.values()].filter((c) => c.role === 'host' && !c.trust.volunteer && !c.draining && c.endReason === null && hasCapabilities(c, config.require));
    if (eligible.length === 0) return Promise.resolve({ status: 'skipped' });
    const asked = eligible.slice(0, CHECK_FAN_OUT);
    const names = asked.map(hostName);
    return new Promise<CheckOutcome>((resolve) => {
      const pending: PendingCheck = {
        asked: new Set(asked),
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
      for (const conn of asked) this.#send(conn, { type: 'check', id, app, config });
    });
  }

  /** Per app, the hosts that report serving, loading or failing each version (`dcdn apps`). */
  appHosts(): Map<string, Array<{ host: string; version: number; state: AppStatus['state'] }>> {
    const out = new Map<string, Array<{ host: string; version: number; state: AppStatus['state'] }>>();
    for (const conn of this.#joined.values()) {
      if (conn.role !== 'host') continue;
      for (const a of conn.appStatus) {
        const list = out.get(a.name) ?? [];
        list.push({ host: hostName(conn), version: a.version, state: a.state });
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
   * What each connected host that is sent `app` last reported (volunteers only for the apps they
   * may run): the hosts a rollout of it waits for. Hosts that are leaving are not counted.
   */
  hostReports(app: AppRef): HostReport[] {
    return [...this.#joined.values()]
      .filter((c) => c.role === 'host' && c.endReason === null && appsFor(c, [app]).length > 0)
      .map((c) => ({ host: hostName(c), apps: c.appStatus }));
  }

  /** Calls `listener` whenever a host reports status, joins or leaves; returns its remover. */
  onHostChange(listener: () => void): () => void {
    this.#hostListeners.add(listener);
    return () => this.#hostListeners.delete(listener);
  }

  #hostChanged(): void {
    for (const listener of [...this.#hostListeners]) listener();
  }

  /** Open connections of volunteers' hosts from one address (said hello or not). */
  volunteersFrom(address: string): number {
    let n = 0;
    for (const conn of this.#connections) if (conn.trust.volunteer && conn.address === address) n++;
    return n;
  }

  /** The hosts that said hello, oldest first. */
  hosts(): HostSummary[] {
    return [...this.#joined.values()].filter((c) => c.role === 'host').map(toHostSummary);
  }

  /**
   * Drains (or resumes) a host: ingresses send it no new requests and let those in flight end.
   * Returns false when no host has this signaling id.
   */
  setDraining(id: string, draining: boolean): boolean {
    const conn = this.#joined.get(id);
    if (!conn || conn.role !== 'host') return false;
    conn.draining = draining;
    const update: ServerMessage = { type: 'update', peer: toPeerInfo(conn) };
    for (const other of this.#joined.values()) if (other.role === 'ingress') this.#send(other, update);
    this.#log.info({ peer: conn.id, sub: conn.sub, draining }, draining ? 'host drained' : 'host resumed');
    return true;
  }

  /**
   * Disconnects a host that was just banned; ingresses close their sessions with it at once
   * (leave reason `banned`). Returns false when no host has this id.
   */
  disconnectBanned(id: string, reason: string): boolean {
    const conn = this.#joined.get(id);
    if (!conn || conn.role !== 'host') return false;
    this.#fail(conn, 'SIG_BANNED', `banned by the operator${reason ? `: ${reason}` : ''}`);
    return true;
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

  /** Peers that said hello, oldest first. */
  peers(): PeerInfo[] {
    return [...this.#joined.values()].map(toPeerInfo);
  }

  counts(): { hosts: number; ingresses: number } {
    let hosts = 0;
    for (const conn of this.#joined.values()) if (conn.role === 'host') hosts += 1;
    return { hosts, ingresses: this.#joined.size - hosts };
  }

  /** Starts pinging; a socket that missed the pongs of two intervals is terminated. */
  startHeartbeat(): void {
    if (this.#heartbeat !== null) return;
    this.#heartbeat = setInterval(() => this.#beat(), this.#options.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  /** Closes every socket with 1001, destroying those that do not finish within `graceMs`. */
  async close(graceMs: number = CLOSE_GRACE_MS): Promise<void> {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
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
  }

  #beat(): void {
    // Credentials are refreshed at half-life, on the heartbeat's tick: a tab stays for days, and
    // a connection it answers after its TURN credentials expired could not allocate a relay.
    const refreshAfterMs = this.#options.ice?.refreshAfterMs ?? null;
    const now = Date.now();
    for (const conn of this.#connections) {
      if (refreshAfterMs !== null && conn.info !== null && conn.endReason === null && now - conn.iceIssuedAt >= refreshAfterMs) {
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
    if (message.type === 'status') {
      if (conn.role !== 'host') return this.#fail(conn, 'SIG_BAD_MESSAGE', 'only hosts report status');
      conn.appStatus = message.apps;
      this.#hostChanged();
      return;
    }
    this.#relay(conn, message);
  }

  /** A host's answer to a check: only a host that was asked may answer it; late answers are dropped. */
  #onChecked(conn: Connection, message: CheckedMessage): void {
    if (conn.role !== 'host') return this.#fail(conn, 'SIG_BAD_MESSAGE', 'only hosts answer checks');
    const pending = this.#checks.get(message.id);
    if (!pending?.asked.has(conn)) return;
    const host = hostName(conn);
    pending.settle(message.ok ? { status: 'ok', host, ms: message.ms } : { status: 'failed', host, error: message.error || 'unknown error', ms: message.ms });
  }

  #join(conn: Connection, info: Record<string, unknown>): void {
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    conn.helloTimer = null;
    conn.info = info;
    conn.since = Date.now();
    this.#joined.set(conn.id, conn);
    const others = [...this.#joined.values()].filter((other) => other.role !== conn.role);
    const iceServers = this.#iceFor(conn);
    this.#send(conn, { type: 'welcome', id: conn.id, role: conn.role, peers: others.map(toPeerInfo), ...(iceServers ? { iceServers } : {}) });
    if (this.#options.apps) this.#send(conn, { type: 'apps', apps: appsFor(conn, this.#options.apps()) });
    const join: ServerMessage = { type: 'join', peer: toPeerInfo(conn) };
    for (const other of others) this.#send(other, join);
    this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, volunteer: conn.trust.volunteer || undefined, address: conn.address }, 'peer joined');
    if (conn.role === 'host') this.#hostChanged();
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
    const target = this.#joined.get(message.to);
    // Same-role targets get the same answer as unknown ones: hosts must not learn of each other.
    if (target === undefined || target.role === conn.role) {
      this.#send(conn, { type: 'error', code: 'SIG_UNKNOWN_PEER', message: 'no such peer of the other role', to: message.to });
      return;
    }
    this.#send(target, { type: 'signal', from: conn.id, data: message.data });
    this.#options.onrelay?.();
  }

  #send(conn: Connection, message: ServerMessage): void {
    if (conn.socket.readyState !== WebSocket.OPEN) return;
    // A peer that stops reading would make us buffer everything relayed to it.
    if (conn.socket.bufferedAmount > this.#options.maxBufferedBytes) {
      conn.endReason ??= 'slow-consumer';
      conn.socket.terminate();
      return;
    }
    conn.socket.send(JSON.stringify(message));
  }

  /** Reports `code` to the peer and closes with the code's close code. */
  #fail(conn: Connection, code: SignalingErrorCode, message: string): void {
    if (conn.endReason !== null) return;
    conn.endReason = code === 'SIG_BANNED' ? 'banned' : code === 'SIG_TOKEN_EXPIRED' ? 'expired' : (code as LeaveReason);
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
    this.#connections.delete(conn);
    if (conn.expiryTimer !== null) clearTimeout(conn.expiryTimer);
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    if (conn.graceTimer !== null) clearTimeout(conn.graceTimer);
    const reason: LeaveReason = conn.endReason ?? 'closed';
    if (this.#joined.get(conn.id) !== conn) {
      this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, code, reason }, 'connection closed before hello');
      return;
    }
    this.#joined.delete(conn.id);
    for (const pending of this.#checks.values()) {
      if (pending.asked.delete(conn) && pending.asked.size === 0) pending.settle({ status: 'timeout', hosts: pending.names });
    }
    const leave: ServerMessage = { type: 'leave', id: conn.id, reason };
    for (const other of this.#joined.values()) if (other.role !== conn.role) this.#send(other, leave);
    this.#log.info({ peer: conn.id, role: conn.role, sub: conn.sub, code, reason }, 'peer left');
    if (conn.role === 'host') this.#hostChanged();
  }
}

/**
 * A volunteer's hello with its id and name namespaced by its invite (trust.ts): what it chose
 * is kept only behind `vol-<invite>-`, so it cannot take an operator host's identity, and a ban
 * of it lands on its own id.
 */
function namespaceVolunteer(info: Record<string, unknown>, conn: Connection): Record<string, unknown> {
  const tabId = typeof info['hostId'] === 'string' && info['hostId'] ? info['hostId'] : conn.id;
  const name = typeof info['name'] === 'string' && info['name'] ? info['name'] : tabId.slice(0, 8);
  return { ...info, hostId: volunteerHostId(conn.sub, tabId), name: volunteerName(name) };
}

function signalKind(data: unknown): SignalKind {
  const kind = typeof data === 'object' && data !== null ? (data as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' && SIGNAL_KINDS.has(kind) ? (kind as SignalKind) : 'other';
}

function hostName(conn: Connection): string {
  const name = conn.info?.['name'];
  return typeof name === 'string' && name ? name.slice(0, 64) : conn.id;
}

function hasCapabilities(conn: Connection, required: readonly string[]): boolean {
  const caps = conn.info?.['capabilities'];
  return required.every((r) => Array.isArray(caps) && caps.includes(r));
}

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

/** What a peer is told is deployed: a volunteer's host hears only of the apps it may run. */
function appsFor(conn: Connection, apps: AppRef[]): AppRef[] {
  return conn.trust.volunteer ? apps.filter((a) => mayRun(conn.trust, a)) : apps;
}

function toHostSummary(conn: Connection): HostSummary {
  const info = conn.info ?? {};
  const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 256) : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const caps = Array.isArray(info['capabilities']) ? info['capabilities'].filter((c): c is string => typeof c === 'string').slice(0, 16) : [];
  return {
    id: conn.id,
    hostId: str(info['hostId']) ?? '',
    name: str(info['name']) ?? '',
    sub: conn.sub ?? null,
    volunteer: conn.trust.volunteer,
    apps: conn.trust.apps,
    draining: conn.draining,
    address: conn.address,
    since: new Date(conn.since).toISOString(),
    userAgent: str(info['userAgent']),
    cores: num(info['cores']),
    memoryGiB: num(info['memoryGiB']),
    capabilities: caps,
  };
}

function rawToText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
