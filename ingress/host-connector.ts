import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { parseLinkSignal, Session, type Channel, type CronMessage, type CronResultMessage, type LinkSignal, type SessionOptions, type Stream, type TransportKind } from '../protocol/index.ts';
import { SignalingClient } from '../protocol/index.ts';
import type { AppRef, PeerInfo } from '../protocol/index.ts';
import type { HostPool } from './host-pool.ts';
import type { OffererFactory } from './rtc-backend.ts';
import { reachableIceServers, type IceServer, type Offerer, type OffererOptions } from './offerer.ts';
import type { TicketBook } from './ticket-book.ts';
import { NodeWebSocketChannel } from './ws-channel.ts';
import { hostTraits, type HostTraits } from './host-traits.ts';
import { linkKey, volunteerName, type ClusterMessage } from '../protocol/index.ts';
import { PlacementView, type IngressSelf } from './placement-view.ts';

/** A host's name for logs and the `dcdn-host` header: header-safe characters only, at most 64. */
function hostName(name: unknown, fallback: string): string {
  const clean = typeof name === 'string' ? name.replace(/[^A-Za-z0-9._ -]/g, '_').trim().slice(0, 64) : '';
  return clean || fallback.slice(-8);
}

/** Named settings of how the ingress reaches hosts. */
export interface HostConnectorOptions {
  /** `ws://signal:port/v1/signal`. */
  signalUrl: string;
  /** An ingress token, or a function minting a fresh one per signaling connection. */
  token: string | (() => string);
  /** This ingress's name in signaling and logs; in a cluster, its placement key (unique). */
  name: string;
  /** The ingress's region (`--region`): hosts of the same region are placed on it first. Default `default`. */
  region: string;
  /** Placement weight (`--weight`): twice the weight takes about twice the hosts. Default 1. */
  weight: number;
  /** Where peer ingresses forward requests to this one (`--peer-url`); none: it takes no forwards. */
  peerUrl?: string;
  /**
   * Cluster mode: a host no longer placed on this ingress keeps its session this long (so a
   * blip in the ingress list does not churn sessions), then is drained and closed. Default 30000 ms.
   */
  detachGraceMs: number;
  /**
   * Cluster mode: a detached host's requests in flight get this long to finish before its
   * session is closed anyway. Default 60000 ms (the proxy's idle timeout).
   */
  detachDrainMs: number;
  /**
   * Cluster mode: a host newly placed on this ingress by a change of the ingress list is
   * connected after a random delay up to this long, so N ingresses reacting to one change do
   * not hit the host's tab at the same instant. Default 500 ms.
   */
  attachJitterMs: number;
  /**
   * After its first welcome, how long the ingress waits for a `cluster` message before it takes
   * signaling for a single node and attaches every host. A cluster's signaling sends it right
   * after the welcome; without the wait an ingress joining a cluster would first connect to every
   * host (the full mesh placement avoids) and detach most of them 30 s later. Default 500 ms.
   */
  clusterWaitMs: number;
  /** `webrtc` (default) offers a data channel; `websocket` sends hosts straight to `wsUrl`. */
  transport: 'webrtc' | 'websocket';
  /** Where hosts dial this ingress's WebSocket endpoint (`ws://ingress:port/_dcdn/host-ws`). */
  wsUrl: string;
  /** A data channel that has not opened after this long falls back to WebSocket. Default 10000 ms. */
  rtcOpenTimeoutMs: number;
  /** A host told to dial the WebSocket endpoint that hasn't within this long is tried again. Default 10000 ms. */
  wsDialTimeoutMs: number;
  /** First delay before reconnecting to a host whose session died; doubles up to `reconnectMaxMs`. */
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  rtc: OffererOptions;
  /** Makes the WebRTC offerer: werift (default) or node-datachannel, see rtc-backend.ts. */
  createOfferer: OffererFactory;
  session: Partial<Omit<SessionOptions, 'role'>>;
  /**
   * A stream a host opened (a KV operation from one of its handlers). Without this, such
   * streams are refused with KV_NOT_CONFIGURED.
   */
  onHostStream?: (stream: Stream, host: { id: string; name: string; info: Record<string, unknown> }) => void;
  /**
   * Session events, for metrics: a session became ready (`opened`), an attempt ended without
   * one (`failed`: a data channel that did not open, a host that did not dial, a session that
   * closed during its handshake), or a host was sent to the WebSocket transport (`fallback`).
   */
  onSessionEvent?: (event: 'opened' | 'failed' | 'fallback', transport: TransportKind) => void;
}

export const CONNECTOR_DEFAULTS = {
  transport: 'webrtc',
  rtcOpenTimeoutMs: 10_000,
  wsDialTimeoutMs: 10_000,
  reconnectBaseMs: 500,
  reconnectMaxMs: 30_000,
  region: 'default',
  weight: 1,
  detachGraceMs: 30_000,
  detachDrainMs: 60_000,
  attachJitterMs: 500,
  clusterWaitMs: 500,
} as const;

/** How often a detached host's in-flight count is looked at while it drains. */
const DETACH_POLL_MS = 100;

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/**
 * Session-ending codes that mean the host broke the protocol (rather than went away): the host
 * is penalised in the pool, and its reconnect back-off is not reset when it comes back.
 */
const HOST_FAULTS: ReadonlySet<string> = new Set([
  'PROTO_DECODE',
  'PROTO_FRAME_INVALID',
  'PROTO_MESSAGE_TOO_LARGE',
  'PROTO_STREAM_STATE',
  'PROTO_FLOW_CONTROL',
  'PROTO_VERSION',
  'PROTO_RATE_LIMITED',
  'PROTO_SLOW_PEER',
  // A host that opens a channel and never says HELLO is as broken as one that speaks another version.
  'PROTO_HELLO_TIMEOUT',
]);

/** One host as the connector knows it, across signaling reconnects. */
interface HostLink {
  hostId: string;
  name: string;
  info: Record<string, unknown>;
  /** What signaling vouches for (volunteer or not, app scope) and what the host reports. */
  traits: HostTraits;
  /** The host's current signaling id; null while it is not in signaling. */
  peerId: string | null;
  /** The connection attempt in progress, if any. */
  conn: string | null;
  offerer: Offerer | null;
  fallbackTimer: ReturnType<typeof setTimeout> | undefined;
  session: Session | null;
  failures: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** A volunteer's end (invite expiry plus grace, ms since the epoch, from signaling); null for none. */
  expiresAt: number | null;
  expiryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The region of the host's signaling node (PeerInfo.region), if signaling tags one. */
  region: string | undefined;
  /** The ingresses placement puts the host on, best first; null when not clustered. */
  placement: string[] | null;
  /** A newly placed host's jittered connect. */
  attachTimer: ReturnType<typeof setTimeout> | undefined;
  /** Running while a host no longer placed here keeps its session for the detach grace. */
  detachTimer: ReturnType<typeof setTimeout> | undefined;
  /** Past the grace: the host takes no new requests here and closes once idle. */
  detaching: boolean;
}

/** A host as forwarding sees it: known from signaling, attached here or not. */
export interface KnownHost {
  key: string;
  traits: HostTraits;
  /** The ingresses placement puts it on; null when not clustered. */
  placement: string[] | null;
}

/** setTimeout's longest delay; longer waits are re-armed (invites may last 30 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Keeps one session open to every host in signaling and registers it in the pool.
 *
 * Hosts are known by the stable `hostId` in their hello info, not by their signaling id, so a
 * signaling restart does not disturb sessions: a host leaving signaling is only noted, and its
 * session keeps serving until the session itself fails (the heartbeat notices within seconds).
 */
export class HostConnector {
  readonly #pool: HostPool;
  readonly #tickets: TicketBook;
  readonly #opts: HostConnectorOptions;
  readonly #log: Log;
  readonly #links = new Map<string, HostLink>();
  readonly #signaling: SignalingClient;
  /** The STUN/TURN servers signaling handed us (fresh TURN credentials); used unless `rtc.iceServers` is set. */
  #signaledIce: IceServer[] = [];
  #closed = false;
  /** Left signaling on the way out: no new sessions, the open ones finish their requests. */
  #leaving = false;
  readonly #view: PlacementView;
  /** From the first welcome until a `cluster` message or `clusterWaitMs`: hosts are noted, not connected. */
  #awaitingCluster: ReturnType<typeof setTimeout> | 'pending' | null = 'pending';
  /** The deployed apps' active versions, as signaling announces them. */
  onapps: ((apps: AppRef[]) => void) | null = null;
  /** A `cluster` message was applied (the view is current). */
  oncluster: ((view: PlacementView) => void) | null = null;
  /** Signaling asks for a scheduled run (cron-runner.ts); answer with {@link cronResult}. */
  oncron: ((message: CronMessage) => void) | null = null;

  constructor(pool: HostPool, tickets: TicketBook, options: HostConnectorOptions, log: Log) {
    this.#pool = pool;
    this.#tickets = tickets;
    this.#opts = options;
    this.#log = log;
    const self: IngressSelf = { name: options.name, region: options.region, weight: options.weight, ...(options.peerUrl ? { peerUrl: options.peerUrl } : {}) };
    this.#view = new PlacementView(self);
    this.#signaling = new SignalingClient({
      url: options.signalUrl,
      token: options.token,
      // name, region, weight and peerUrl are what signaling lists in `cluster` messages.
      info: { name: options.name, wsUrl: options.wsUrl, transport: options.transport, region: options.region, weight: options.weight, ...(options.peerUrl ? { peerUrl: options.peerUrl } : {}) },
      WebSocketImpl: WebSocket as never,
    });
    this.#signaling.onwelcome = (m) => {
      this.#useSignaledIce(m.iceServers ?? [], true);
      if (this.#awaitingCluster === 'pending') {
        this.#awaitingCluster = setTimeout(() => {
          this.#awaitingCluster = null;
          if (this.#view.clustered) return;
          this.#log('info', 'no cluster message from signaling: a single node, attaching every host');
          for (const link of this.#links.values()) this.#reconcile(link, false);
        }, this.#opts.clusterWaitMs);
      }
      log('info', 'joined signaling', { id: m.id, hosts: m.peers.length, more: m.more === true, iceServers: this.#iceSummary() });
      // With `more`, the rest of the list follows in peers chunks (onpeers replaces then).
      if (m.more) for (const p of m.peers) this.#hostSeen(p);
      else this.#replacePeers(m.peers);
    };
    this.#signaling.onpeers = (peers) => this.#replacePeers(peers);
    this.#signaling.onerror = (code, message) => {
      // Another ingress registered this name; signaling's message names its address. The client
      // keeps retrying at its back-off, so the name comes back when the other goes.
      if (code === 'SIG_DUPLICATE_PEER') log('error', 'another ingress took this name in signaling; retrying', { name: options.name, detail: message });
    };
    this.#signaling.oncluster = (m) => this.#applyCluster(m);
    this.#signaling.onjoin = (p) => void this.#hostSeen(p);
    this.#signaling.onapps = (apps) => this.onapps?.(apps);
    this.#signaling.oncron = (m) => this.oncron?.(m);
    this.#signaling.onice = (servers) => this.#useSignaledIce(servers, false);
    this.#signaling.onleave = (id, reason) => this.#hostLeft(id, reason);
    this.#signaling.onupdate = (peer) => this.#hostUpdated(peer);
    this.#signaling.onsignal = (from, data) => this.#onSignal(from, data);
    this.#signaling.onstatechange = (state) => {
      if (state === 'closed' && !this.#closed) log('warn', 'signaling connection lost; reconnecting (sessions keep serving)');
    };
  }

  start(): void {
    this.#signaling.start();
  }

  /** Tells signaling how a scheduled run went; false when signaling is not connected. */
  cronResult(result: Omit<CronResultMessage, 'type'>): boolean {
    return this.#signaling.cronResult(result);
  }

  /** The cluster as signaling last described it (placement, peers, the peer key). */
  get view(): PlacementView {
    return this.#view;
  }

  /** Every host signaling lists now, attached here or not (forwarding decides on these). */
  *known(): IterableIterator<KnownHost> {
    for (const link of this.#links.values()) if (link.peerId) yield { key: link.hostId, traits: link.traits, placement: link.placement };
  }

  /** How many hosts signaling lists now. */
  get knownCount(): number {
    let n = 0;
    for (const link of this.#links.values()) if (link.peerId) n++;
    return n;
  }

  /**
   * Leaves signaling but keeps the sessions: on the way out, so that placement moves this
   * ingress's hosts to others at once while its sessions finish the requests in flight.
   */
  leaveSignaling(): void {
    this.#leaving = true;
    this.#signaling.close();
    for (const link of this.#links.values()) {
      clearTimeout(link.retryTimer);
      clearTimeout(link.attachTimer);
      this.#abandonAttempt(link);
    }
  }

  /** Whether the signaling connection is up. */
  get signalingConnected(): boolean {
    return this.#signaling.connected;
  }

  /** Attaches a WebSocket that presented a valid ticket. */
  attachWebSocket(hostId: string, conn: string, ws: WebSocket): void {
    const link = this.#links.get(hostId);
    if (!link || link.conn !== conn || this.#closed) {
      ws.close(1008, 'stale connection attempt');
      return;
    }
    this.#startSession(link, new NodeWebSocketChannel(ws), 'websocket');
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#awaitingCluster !== null && this.#awaitingCluster !== 'pending') clearTimeout(this.#awaitingCluster);
    this.#signaling.close();
    for (const link of this.#links.values()) {
      this.#clearTimers(link);
      this.#abandonAttempt(link);
      link.session?.close();
    }
    this.#links.clear();
  }

  #clearTimers(link: HostLink): void {
    clearTimeout(link.retryTimer);
    clearTimeout(link.expiryTimer);
    clearTimeout(link.attachTimer);
    clearTimeout(link.detachTimer);
  }

  /**
   * An authoritative host list: every host in it is seen; any other is no longer in signaling
   * (its session keeps serving; without one it is forgotten).
   */
  #replacePeers(peers: PeerInfo[]): void {
    const present = new Set<string>();
    for (const p of peers) present.add(this.#hostSeen(p).hostId);
    for (const link of this.#links.values()) {
      if (present.has(link.hostId) || link.peerId === null) continue;
      link.peerId = null;
      if (!link.session) this.#forget(link);
    }
  }

  /** Drops a host the ingress has no session with and signaling no longer lists. */
  #forget(link: HostLink): void {
    this.#abandonAttempt(link);
    this.#clearTimers(link);
    this.#links.delete(link.hostId);
  }

  /** A new list of live ingresses: re-place every host, attach the new ones, start detaching the others. */
  #applyCluster(m: ClusterMessage): void {
    const first = !this.#view.clustered;
    this.#view.update(m);
    // The first list after start: connect what is placed here at once (nothing was attached).
    const jitter = this.#awaitingCluster === null;
    if (this.#awaitingCluster !== null && this.#awaitingCluster !== 'pending') clearTimeout(this.#awaitingCluster);
    this.#awaitingCluster = null;
    let mine = 0;
    for (const link of this.#links.values()) {
      link.placement = this.#view.placement(link.hostId, link.region);
      if (this.#view.isMine(link.placement)) mine++;
      this.#reconcile(link, jitter);
    }
    this.#log('info', first ? 'cluster mode: attaching the hosts placed on this ingress' : 'cluster changed', {
      ingresses: this.#view.ingresses.map((i) => i.name + (i.draining ? ' (draining)' : '')).join(','),
      attach: Math.min(m.attach, this.#view.live),
      hosts: this.#links.size,
      placedHere: mine,
    });
    this.oncluster?.(this.#view);
  }

  /**
   * Brings a host's attachment in line with placement: a host placed here gets a session (after
   * a jitter when `jitter`), a host placed elsewhere keeps its session for the detach grace.
   */
  #reconcile(link: HostLink, jitter: boolean): void {
    if (this.#view.isMine(link.placement)) {
      if (link.detachTimer !== undefined || link.detaching) {
        clearTimeout(link.detachTimer);
        link.detachTimer = undefined;
        if (link.detaching) {
          link.detaching = false;
          const entry = this.#pool.get(link.hostId);
          if (entry) entry.traits = link.traits;
        }
        this.#log('info', 'host placed here again; keeping its session', { host: link.name });
      }
      if (link.session || link.conn || link.retryTimer !== undefined || link.attachTimer !== undefined || !link.peerId) return;
      if (!jitter) return this.#connect(link);
      link.attachTimer = setTimeout(() => {
        link.attachTimer = undefined;
        if (!link.session && !link.conn) this.#connect(link);
      }, Math.random() * this.#opts.attachJitterMs);
      return;
    }
    // Placed elsewhere.
    clearTimeout(link.attachTimer);
    link.attachTimer = undefined;
    clearTimeout(link.retryTimer);
    link.retryTimer = undefined;
    if (link.conn) this.#abandonAttempt(link);
    if (link.session && link.detachTimer === undefined && !link.detaching) {
      link.detachTimer = setTimeout(() => {
        link.detachTimer = undefined;
        this.#detach(link);
      }, this.#opts.detachGraceMs);
    }
  }

  /** The detach grace is over: no new requests for the host here; its session closes once idle. */
  #detach(link: HostLink): void {
    const session = link.session;
    if (!session || this.#view.isMine(link.placement)) return;
    link.detaching = true;
    const entry = this.#pool.get(link.hostId);
    if (entry) entry.traits = { ...link.traits, draining: true };
    this.#log('info', 'host placed on other ingresses; draining and closing its session', { host: link.name, placement: link.placement?.join(',') });
    const deadline = Date.now() + this.#opts.detachDrainMs;
    const closeWhenIdle = () => {
      if (link.session !== session || !link.detaching) return;
      const busy = this.#pool.get(link.hostId)?.inFlight ?? 0;
      if (busy > 0 && Date.now() < deadline) return void (link.detachTimer = setTimeout(closeWhenIdle, DETACH_POLL_MS));
      link.detachTimer = undefined;
      session.close('PROTO_SESSION_CLOSED', 'detached: the host is placed on other ingresses');
    };
    closeWhenIdle();
  }

  #hostSeen(peer: PeerInfo): HostLink {
    const hostId = linkKey(peer);
    let link = this.#links.get(hostId);
    if (!link) {
      const name = hostName(peer.volunteer && typeof peer.info.name === 'string' ? volunteerName(peer.info.name) : peer.info.name, hostId);
      link = {
        hostId, name, info: peer.info, traits: hostTraits(peer), peerId: peer.id, conn: null, offerer: null, fallbackTimer: undefined, session: null, failures: 0, retryTimer: undefined,
        expiresAt: null, expiryTimer: undefined, region: peer.region, placement: null, attachTimer: undefined, detachTimer: undefined, detaching: false,
      };
      this.#links.set(hostId, link);
      this.#log('info', 'host joined', { host: name, ua: peer.info.userAgent, volunteer: link.traits.volunteer || undefined });
    }
    link.peerId = peer.id;
    link.traits = hostTraits(peer);
    link.region = peer.region;
    link.placement = this.#view.placement(hostId, link.region);
    const entry = this.#pool.get(link.hostId);
    if (entry) entry.traits = this.#poolTraits(link);
    link.expiresAt = peer.expiresAt ?? null;
    this.#armExpiry(link);
    if (this.#awaitingCluster !== null) return link; // placed once the cluster is known
    if (!this.#view.isMine(link.placement)) this.#reconcile(link, false);
    else if (!link.session && !link.conn) this.#connect(link);
    return link;
  }

  /** The operator drained or resumed a host. */
  #hostUpdated(peer: PeerInfo): void {
    const link = this.#links.get(linkKey(peer));
    if (!link || link.peerId !== peer.id) return;
    link.traits = hostTraits(peer);
    const entry = this.#pool.get(link.hostId);
    if (entry) entry.traits = this.#poolTraits(link);
    this.#log('info', link.traits.draining ? 'host drained' : 'host resumed', { host: link.name });
  }

  #hostLeft(peerId: string, reason = 'closed'): void {
    for (const link of this.#links.values()) {
      if (link.peerId !== peerId) continue;
      link.peerId = null;
      this.#log('info', 'host left signaling', { host: link.name, reason, serving: link.session !== null });
      if (reason === 'banned' || reason === 'expired') {
        // A banned host, or one whose invite ran out (grace included), is cut off at once,
        // in-flight requests and all.
        this.#pool.remove(link.hostId);
        link.session?.close('PROTO_SESSION_CLOSED', reason === 'banned' ? 'banned by the operator' : 'the invite expired');
      }
      if (!link.session) this.#forget(link);
    }
  }

  /** The traits the pool picks by: a host being detached takes no new requests. */
  #poolTraits(link: HostLink): HostTraits {
    return link.detaching ? { ...link.traits, draining: true } : link.traits;
  }

  /**
   * Ends a volunteer's session when its invite (plus signaling's grace) runs out, whether or not
   * signaling is there to say so; long waits are re-armed.
   */
  #armExpiry(link: HostLink): void {
    clearTimeout(link.expiryTimer);
    if (link.expiresAt === null) return;
    const left = link.expiresAt - Date.now();
    if (left > 0) {
      link.expiryTimer = setTimeout(() => this.#armExpiry(link), Math.min(left, MAX_TIMER_MS));
      return;
    }
    this.#log('info', "host's invite expired; closing its session", { host: link.name, expiredAt: new Date(link.expiresAt).toISOString() });
    link.peerId = null; // not reconnected: signaling refuses its token from now on
    this.#pool.remove(link.hostId);
    clearTimeout(link.retryTimer);
    link.retryTimer = undefined;
    this.#abandonAttempt(link);
    if (link.session) link.session.close('PROTO_SESSION_CLOSED', 'the invite expired');
    else this.#links.delete(link.hostId);
  }

  #connect(link: HostLink): void {
    if (this.#closed || this.#leaving || !link.peerId || link.session) return;
    if (!this.#view.isMine(link.placement)) return;
    if (link.expiresAt !== null && link.expiresAt <= Date.now()) return;
    const conn = randomUUID();
    link.conn = conn;
    if (this.#opts.transport === 'websocket') return this.#offerWebSocket(link, conn);
    void this.#offerRtc(link, conn);
  }

  async #offerRtc(link: HostLink, conn: string): Promise<void> {
    let offerer: Offerer;
    try {
      offerer = await this.#opts.createOfferer(this.#rtcOptions());
    } catch (err) {
      this.#log('error', 'cannot create a WebRTC peer connection; using WebSocket', { err: (err as Error).message });
      this.#fellBack();
      return this.#offerWebSocket(link, conn);
    }
    if (link.conn !== conn) return void offerer.close();
    link.offerer = offerer;
    offerer.onLocalCandidate = (candidate) => this.#send(link, { kind: 'candidate', conn, candidate });
    let offered = false;
    link.fallbackTimer = setTimeout(() => {
      if (link.conn !== conn) return;
      // werift finishes gathering before it makes the offer; a TURN server that refuses our
      // credentials (or never answers) stalls it there, and the tab never hears of us.
      const stage = offered ? 'connecting after the offer' : 'gathering candidates (is every STUN/TURN server reachable, and are its credentials accepted?)';
      this.#log('warn', 'data channel did not open in time; falling back to WebSocket', { host: link.name, ms: this.#opts.rtcOpenTimeoutMs, stage });
      this.#abandonAttempt(link);
      this.#fellBack();
      const next = randomUUID();
      link.conn = next;
      this.#offerWebSocket(link, next);
    }, this.#opts.rtcOpenTimeoutMs);
    try {
      const offer = await offerer.offer();
      if (link.conn !== conn) return;
      this.#send(link, { kind: 'offer', conn, sdp: offer.sdp });
      offered = true;
      const channel = await offerer.opened;
      if (link.conn !== conn) return void channel.close('superseded');
      clearTimeout(link.fallbackTimer);
      this.#log('info', 'data channel open', { host: link.name, setupMs: offerer.setupMs === undefined ? undefined : Math.round(offerer.setupMs), maxMessageSize: channel.maxMessageSize });
      link.offerer = null; // the session owns the channel now; the offerer closes with it
      this.#startSession(link, channel, 'webrtc', () => void offerer.close(), offerer.backend);
    } catch (err) {
      if (link.conn !== conn) return; // superseded by the fallback or a close
      this.#log('warn', 'data channel failed', { host: link.name, err: (err as Error).message });
      // leave the fallback timer to switch to WebSocket
    }
  }

  /**
   * The offerer's options: the ingress's own `rtc.iceServers` when it was given any (even
   * none: `[]` keeps it ICE-lite), else what signaling handed out. Either way only servers the
   * operator configured are ever contacted.
   */
  #rtcOptions(): OffererOptions {
    if (this.#opts.rtc.iceServers !== undefined) return this.#opts.rtc;
    return { ...this.#opts.rtc, iceServers: this.#signaledIce };
  }

  #useSignaledIce(servers: IceServer[], onWelcome: boolean): void {
    const { servers: usable, dropped } = reachableIceServers(servers, this.#opts.rtc.advertisedAddresses);
    if (onWelcome && dropped.length > 0 && this.#opts.rtc.iceServers === undefined) {
      this.#log('warn', 'ignoring ICE servers a loopback-only ingress cannot reach (set rtc.advertisedAddresses to use them)', { urls: dropped.join(' ') });
    }
    this.#signaledIce = usable;
  }

  /** The ICE URLs in force, for logs (credentials never logged). */
  #iceSummary(): string {
    const servers = this.#opts.rtc.iceServers ?? this.#signaledIce;
    const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    const whose = this.#opts.rtc.iceServers !== undefined ? 'own' : 'from signaling';
    return urls.length === 0 ? `none (${whose})` : `${urls.join(' ')} (${whose})`;
  }

  #offerWebSocket(link: HostLink, conn: string): void {
    const ticket = this.#tickets.issue({ hostId: link.hostId, conn });
    this.#send(link, { kind: 'websocket', conn, url: this.#opts.wsUrl, ticket });
    link.fallbackTimer = setTimeout(() => {
      if (link.conn !== conn) return;
      this.#log('warn', 'host did not dial the WebSocket endpoint in time', { host: link.name, ms: this.#opts.wsDialTimeoutMs });
      this.#opts.onSessionEvent?.('failed', 'websocket');
      this.#abandonAttempt(link);
      this.#scheduleRetry(link);
    }, this.#opts.wsDialTimeoutMs);
  }

  /** Tries the host again after a back-off that doubles with each failure in a row. */
  #scheduleRetry(link: HostLink): void {
    if (this.#closed || this.#leaving || !link.peerId || !this.#view.isMine(link.placement)) return;
    link.failures++;
    const delay = Math.min(this.#opts.reconnectMaxMs, this.#opts.reconnectBaseMs * 2 ** (link.failures - 1));
    clearTimeout(link.retryTimer);
    link.retryTimer = setTimeout(() => {
      link.retryTimer = undefined;
      this.#connect(link);
    }, delay * (0.75 + Math.random() * 0.5));
  }

  #startSession(link: HostLink, channel: Channel, transport: TransportKind, onClosed?: () => void, rtc: 'werift' | 'node-datachannel' | null = null): void {
    clearTimeout(link.fallbackTimer);
    const session = new Session(channel, { ...this.#opts.session, role: 'client', agent: `dcdn-ingress/${this.#opts.name}` });
    const previous = link.session;
    link.session = session;
    link.conn = null;
    const onHostStream = this.#opts.onHostStream;
    session.onstream = (stream) => {
      if (onHostStream) onHostStream(stream, { id: link.hostId, name: link.name, info: link.info });
      else if (stream.request.url.startsWith('/sql/')) stream.reset('SQL_NOT_CONFIGURED', 'D1_ERROR: this ingress has no SQL store');
      else stream.reset('KV_NOT_CONFIGURED', 'this ingress has no KV store');
    };
    session.onclose = (err) => {
      onClosed?.();
      this.#pool.remove(link.hostId, session);
      if (link.session !== session) return;
      link.session = null;
      if (this.#closed) return;
      const penaltyMs = HOST_FAULTS.has(err.code) ? this.#pool.reportSessionFault(link.hostId) : undefined;
      const detached = link.detaching;
      link.detaching = false;
      clearTimeout(link.detachTimer);
      link.detachTimer = undefined;
      this.#log(detached ? 'info' : 'warn', 'host session closed', { host: link.name, transport, code: err.code, reason: err.message, penaltyMs });
      if (!link.peerId) {
        clearTimeout(link.expiryTimer);
        this.#links.delete(link.hostId);
        return;
      }
      this.#scheduleRetry(link);
    };
    session.ready.then(
      async () => {
        // Warm the channel with round trips before real traffic: on a fresh werift data
        // channel a burst of messages right after the handshake stalls ~1 s (one SCTP
        // retransmission timeout) until a round trip has been made; node-datachannel does not
        // (docs/webrtc.md).
        if (rtc === 'werift') await session.ping().then(() => Promise.all([session.ping(), session.ping()])).catch(() => {});
        if (session.isClosed) return;
        previous?.close();
        // A host whose sessions keep ending in protocol faults keeps its growing reconnect
        // back-off until the pool has forgiven it (its penalty level decays to 0).
        if (this.#pool.standing(link.hostId).level === 0) link.failures = 0;
        this.#pool.add({ id: link.hostId, name: link.name, session, transport, rtc, info: link.info, traits: this.#poolTraits(link) });
        // Placement may have moved while the session was being set up.
        if (!this.#view.isMine(link.placement)) this.#reconcile(link, false);
        this.#log('info', 'host ready', { host: link.name, transport, rtc: rtc ?? undefined, agent: session.peerAgent });
        this.#opts.onSessionEvent?.('opened', transport);
      },
      () => this.#opts.onSessionEvent?.('failed', transport),
    );
  }

  #abandonAttempt(link: HostLink): void {
    clearTimeout(link.fallbackTimer);
    const offerer = link.offerer;
    link.offerer = null;
    if (link.conn && link.peerId) this.#send(link, { kind: 'close', conn: link.conn, reason: 'abandoned' });
    link.conn = null;
    void offerer?.close().catch((err: Error) => this.#log('warn', 'closing an abandoned peer connection failed', { err: err.message }));
  }

  #onSignal(from: string, data: unknown): void {
    const signal = parseLinkSignal(data);
    if (!signal) return this.#log('warn', 'ignored a malformed signal', { from });
    let link: HostLink | undefined;
    for (const l of this.#links.values()) if (l.peerId === from) link = l;
    if (!link || link.conn !== signal.conn || !link.offerer) return;
    const offerer = link.offerer;
    const fail = (err: Error) => this.#log('warn', 'bad signal from host', { host: link.name, kind: signal.kind, err: err.message });
    if (signal.kind === 'answer') void offerer.acceptAnswer({ type: 'answer', sdp: signal.sdp }).catch(fail);
    else if (signal.kind === 'candidate') void offerer.addRemoteCandidate(signal.candidate).catch(fail);
    else if (signal.kind === 'close') {
      // The tab gave up on the data channel (no candidate pair, say): fall back at once rather
      // than at the end of rtcOpenTimeoutMs.
      this.#log('warn', 'the host could not open the data channel; falling back to WebSocket', { host: link.name, reason: signal.reason });
      clearTimeout(link.fallbackTimer);
      this.#abandonAttempt(link);
      this.#fellBack();
      const next = randomUUID();
      link.conn = next;
      this.#offerWebSocket(link, next);
    }
  }

  /** A data channel attempt given up for the WebSocket transport. */
  #fellBack(): void {
    this.#opts.onSessionEvent?.('failed', 'webrtc');
    this.#opts.onSessionEvent?.('fallback', 'websocket');
  }

  #send(link: HostLink, signal: LinkSignal): void {
    if (link.peerId) this.#signaling.send(link.peerId, signal);
  }
}
