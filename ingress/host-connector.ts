import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { parseLinkSignal, Session, type Channel, type LinkSignal, type SessionOptions, type TransportKind } from '../protocol/index.ts';
import { SignalingClient } from '../signaling/client.ts';
import type { AppRef, PeerInfo } from '../signaling/messages.ts';
import type { HostPool } from './host-pool.ts';
import type { OffererFactory } from './rtc-backend.ts';
import type { Offerer, OffererOptions } from './rtc-peer.ts';
import type { TicketBook } from './ticket-book.ts';
import { NodeWebSocketChannel } from './ws-channel.ts';

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
}

export const CONNECTOR_DEFAULTS = {
  transport: 'webrtc',
  rtcOpenTimeoutMs: 10_000,
  wsDialTimeoutMs: 10_000,
  reconnectBaseMs: 500,
  reconnectMaxMs: 30_000,
} as const;

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** One host as the connector knows it, across signaling reconnects. */
interface HostLink {
  hostId: string;
  name: string;
  info: Record<string, unknown>;
  /** The host's current signaling id; null while it is not in signaling. */
  peerId: string | null;
  /** The connection attempt in progress, if any. */
  conn: string | null;
  offerer: Offerer | null;
  fallbackTimer: ReturnType<typeof setTimeout> | undefined;
  session: Session | null;
  failures: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
}

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
      log('info', 'joined signaling', { id: m.id, hosts: m.peers.length });
      const present = new Set<string>();
      for (const p of m.peers) present.add(this.#hostSeen(p).hostId);
      for (const link of this.#links.values()) if (!present.has(link.hostId)) link.peerId = null;
    };
    this.#signaling.onjoin = (p) => void this.#hostSeen(p);
    this.#signaling.onapps = (apps) => this.onapps?.(apps);
    this.#signaling.onleave = (id) => this.#hostLeft(id);
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
      this.#abandonAttempt(link);
      link.session?.close();
    }
    this.#links.clear();
  }

  #hostSeen(peer: PeerInfo): HostLink {
    const hostId = typeof peer.info.hostId === 'string' && peer.info.hostId.length <= 64 ? peer.info.hostId : peer.id;
    let link = this.#links.get(hostId);
    if (!link) {
      const name = typeof peer.info.name === 'string' && peer.info.name ? peer.info.name.slice(0, 64) : hostId.slice(0, 8);
      link = { hostId, name, info: peer.info, peerId: peer.id, conn: null, offerer: null, fallbackTimer: undefined, session: null, failures: 0, retryTimer: undefined };
      this.#links.set(hostId, link);
      this.#log('info', 'host joined', { host: name, ua: peer.info.userAgent });
    }
    link.peerId = peer.id;
    if (!link.session && !link.conn) this.#connect(link);
    return link;
  }

  #hostLeft(peerId: string): void {
    for (const link of this.#links.values()) {
      if (link.peerId !== peerId) continue;
      link.peerId = null;
      this.#log('info', 'host left signaling', { host: link.name, serving: link.session !== null });
      if (!link.session) {
        this.#abandonAttempt(link);
        clearTimeout(link.retryTimer);
        this.#links.delete(link.hostId);
      }
    }
  }

  #connect(link: HostLink): void {
    if (this.#closed || !link.peerId || link.session) return;
    const conn = randomUUID();
    link.conn = conn;
    if (this.#opts.transport === 'websocket') return this.#offerWebSocket(link, conn);
    void this.#offerRtc(link, conn);
  }

  async #offerRtc(link: HostLink, conn: string): Promise<void> {
    let offerer: Offerer;
    try {
      offerer = await this.#opts.createOfferer(this.#opts.rtc);
    } catch (err) {
      this.#log('error', 'cannot create a WebRTC peer connection; using WebSocket', { err: (err as Error).message });
      return this.#offerWebSocket(link, conn);
    }
    if (link.conn !== conn) return void offerer.close();
    link.offerer = offerer;
    offerer.onLocalCandidate = (candidate) => this.#send(link, { kind: 'candidate', conn, candidate });
    link.fallbackTimer = setTimeout(() => {
      if (link.conn !== conn) return;
      this.#log('warn', 'data channel did not open in time; falling back to WebSocket', { host: link.name, ms: this.#opts.rtcOpenTimeoutMs });
      this.#abandonAttempt(link);
      const next = randomUUID();
      link.conn = next;
      this.#offerWebSocket(link, next);
    }, this.#opts.rtcOpenTimeoutMs);
    try {
      const offer = await offerer.offer();
      if (link.conn !== conn) return;
      this.#send(link, { kind: 'offer', conn, sdp: offer.sdp });
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

  #offerWebSocket(link: HostLink, conn: string): void {
    const ticket = this.#tickets.issue({ hostId: link.hostId, conn });
    this.#send(link, { kind: 'websocket', conn, url: this.#opts.wsUrl, ticket });
    link.fallbackTimer = setTimeout(() => {
      if (link.conn !== conn) return;
      this.#log('warn', 'host did not dial the WebSocket endpoint in time', { host: link.name, ms: this.#opts.wsDialTimeoutMs });
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
    session.onclose = (err) => {
      onClosed?.();
      this.#pool.remove(link.hostId, session);
      if (link.session !== session) return;
      link.session = null;
      if (this.#closed) return;
      this.#log('warn', 'host session closed', { host: link.name, transport, code: err.code, reason: err.message });
      if (!link.peerId) {
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
        link.failures = 0;
        this.#pool.add({ id: link.hostId, name: link.name, session, transport, rtc, info: link.info });
        this.#log('info', 'host ready', { host: link.name, transport, rtc: rtc ?? undefined, agent: session.peerAgent });
      },
      () => {},
    );
  }

  #abandonAttempt(link: HostLink): void {
    clearTimeout(link.fallbackTimer);
    const offerer = link.offerer;
    link.offerer = null;
    if (link.conn && link.peerId) this.#send(link, { kind: 'close', conn: link.conn, reason: 'abandoned' });
    link.conn = null;
    void offerer?.close().catch(() => {});
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
  }

  #send(link: HostLink, signal: LinkSignal): void {
    if (link.peerId) this.#signaling.send(link.peerId, signal);
  }
}
