import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { parseLinkSignal, Session, type Channel, type LinkSignal, type SessionOptions, type Stream, type TransportKind } from '../protocol/index.ts';
import { SignalingClient } from '../protocol/index.ts';
import type { AppRef, PeerInfo } from '../protocol/index.ts';
import type { HostPool } from './host-pool.ts';
import type { OffererFactory } from './rtc-backend.ts';
import { reachableIceServers, type IceServer, type Offerer, type OffererOptions } from './offerer.ts';
import type { TicketBook } from './ticket-book.ts';
import { NodeWebSocketChannel } from './ws-channel.ts';
import { hostTraits, type HostTraits } from './host-traits.ts';
import { volunteerHostId, volunteerName } from '../protocol/index.ts';

/**
 * The key a host is known by across signaling reconnects: the stable id its tab reports. A
 * volunteer's is qualified by its invite (`vol-<invite>-<id>`, as signaling already made it and
 * `dcdn hosts list` shows it), so a volunteer claiming another host's id cannot take that host's
 * place (at worst it displaces another tab of its own invite).
 */
function linkKey(peer: PeerInfo): string {
  const reported = typeof peer.info.hostId === 'string' ? peer.info.hostId : '';
  if (peer.volunteer) return volunteerHostId(peer.sub, reported || peer.id);
  return reported && reported.length <= 64 ? reported : peer.id;
}

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
  /** This ingress's name in signaling and logs. */
  name: string;
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
} as const;

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
  /** The deployed apps' active versions, as signaling announces them. */
  onapps: ((apps: AppRef[]) => void) | null = null;

  constructor(pool: HostPool, tickets: TicketBook, options: HostConnectorOptions, log: Log) {
    this.#pool = pool;
    this.#tickets = tickets;
    this.#opts = options;
    this.#log = log;
    this.#signaling = new SignalingClient({
      url: options.signalUrl,
      token: options.token,
      info: { name: options.name, wsUrl: options.wsUrl, transport: options.transport },
      WebSocketImpl: WebSocket as never,
    });
    this.#signaling.onwelcome = (m) => {
      this.#useSignaledIce(m.iceServers ?? [], true);
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
    this.#signaling.onjoin = (p) => void this.#hostSeen(p);
    this.#signaling.onapps = (apps) => this.onapps?.(apps);
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
    this.#signaling.close();
    for (const link of this.#links.values()) {
      clearTimeout(link.retryTimer);
      clearTimeout(link.expiryTimer);
      this.#abandonAttempt(link);
      link.session?.close();
    }
    this.#links.clear();
  }

  /** An authoritative host list: every host in it is seen; a link to any other loses its peer. */
  #replacePeers(peers: PeerInfo[]): void {
    const present = new Set<string>();
    for (const p of peers) present.add(this.#hostSeen(p).hostId);
    for (const link of this.#links.values()) if (!present.has(link.hostId)) link.peerId = null;
  }

  #hostSeen(peer: PeerInfo): HostLink {
    const hostId = linkKey(peer);
    let link = this.#links.get(hostId);
    if (!link) {
      const name = hostName(peer.volunteer && typeof peer.info.name === 'string' ? volunteerName(peer.info.name) : peer.info.name, hostId);
      link = { hostId, name, info: peer.info, traits: hostTraits(peer), peerId: peer.id, conn: null, offerer: null, fallbackTimer: undefined, session: null, failures: 0, retryTimer: undefined, expiresAt: null, expiryTimer: undefined };
      this.#links.set(hostId, link);
      this.#log('info', 'host joined', { host: name, ua: peer.info.userAgent, volunteer: link.traits.volunteer || undefined });
    }
    link.peerId = peer.id;
    link.traits = hostTraits(peer);
    const entry = this.#pool.get(link.hostId);
    if (entry) entry.traits = link.traits;
    link.expiresAt = peer.expiresAt ?? null;
    this.#armExpiry(link);
    if (!link.session && !link.conn) this.#connect(link);
    return link;
  }

  /** The operator drained or resumed a host. */
  #hostUpdated(peer: PeerInfo): void {
    const link = this.#links.get(linkKey(peer));
    if (!link || link.peerId !== peer.id) return;
    link.traits = hostTraits(peer);
    const entry = this.#pool.get(link.hostId);
    if (entry) entry.traits = link.traits;
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
      if (!link.session) {
        this.#abandonAttempt(link);
        clearTimeout(link.retryTimer);
        clearTimeout(link.expiryTimer);
        this.#links.delete(link.hostId);
      }
    }
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
    this.#abandonAttempt(link);
    if (link.session) link.session.close('PROTO_SESSION_CLOSED', 'the invite expired');
    else this.#links.delete(link.hostId);
  }

  #connect(link: HostLink): void {
    if (this.#closed || !link.peerId || link.session) return;
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
    if (this.#closed || !link.peerId) return;
    link.failures++;
    const delay = Math.min(this.#opts.reconnectMaxMs, this.#opts.reconnectBaseMs * 2 ** (link.failures - 1));
    clearTimeout(link.retryTimer);
    link.retryTimer = setTimeout(() => this.#connect(link), delay * (0.75 + Math.random() * 0.5));
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
      else stream.reset('KV_NOT_CONFIGURED', 'this ingress has no KV store');
    };
    session.onclose = (err) => {
      onClosed?.();
      this.#pool.remove(link.hostId, session);
      if (link.session !== session) return;
      link.session = null;
      if (this.#closed) return;
      const penaltyMs = HOST_FAULTS.has(err.code) ? this.#pool.reportSessionFault(link.hostId) : undefined;
      this.#log('warn', 'host session closed', { host: link.name, transport, code: err.code, reason: err.message, penaltyMs });
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
        this.#pool.add({ id: link.hostId, name: link.name, session, transport, rtc, info: link.info, traits: link.traits });
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
