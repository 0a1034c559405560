/**
 * The signaling client, for the ingress (Node) and the host page (browser).
 *
 * Runtime-neutral: it imports no `node:` module and no `ws`; the WebSocket constructor is an
 * option. It stays connected until `close()`: after any close or failed attempt it reconnects
 * with exponential back-off and jitter, says hello again and receives a fresh `welcome`, whose
 * peer list replaces whatever the consumer knew (joins and leaves may have been missed).
 *
 * An auth refusal (401/403 before the upgrade) is retried with back-off like any other failure:
 * a browser cannot see the status, and a token minted by a function may be fresh next time.
 *
 * Keepalive: a browser cannot see WebSocket ping frames, and a frozen server machine sends no FIN,
 * so the client watches for silence itself. After `keepaliveIdleMs` without any message from the
 * server it sends `{"type":"ping"}` (the server answers `pong`); after `keepaliveTimeoutMs` of
 * silence it drops the socket and reconnects (docs/signaling.md, SCALE-OUT §3.11).
 */
import { SignalingError, type SignalingErrorCode } from './signaling-errors.ts';
import { MAX_CHECK_ERROR_LENGTH, MAX_CRON_ERROR_LENGTH, parseServerMessage, type AppRef, type AppStatus, type CheckMessage, type ClusterMessage, type CronMessage, type CronResultMessage, type IceServer, type PeerInfo, type ServerMessage, type WelcomeMessage } from './signaling-messages.ts';

/** The subset of the WHATWG WebSocket that the client uses; `ws`'s WebSocket has it too. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof WebSocketLikeEventMap>(type: K, listener: (event: WebSocketLikeEventMap[K]) => void): void;
}

export interface WebSocketLikeEventMap {
  open: unknown;
  message: { data: unknown };
  close: { code: number; reason: string };
  error: unknown;
}

export type WebSocketConstructorLike = new (url: string) => WebSocketLike;

export interface BackoffOptions {
  /** First retry delay. Default 250. */
  initialMs: number;
  /** Cap on the delay. Default 10000. */
  maxMs: number;
  /** Growth per failed attempt. Default 2. */
  factor: number;
  /** Fraction of the delay that is random (0..1), so peers do not reconnect in lockstep. Default 0.5. */
  jitter: number;
}

export type SignalingClientState = 'connecting' | 'open' | 'closed';

export interface SignalingClientOptions {
  /** Absolute `ws://` or `wss://` URL of `/v1/signal`; the token is added as `?token=`. */
  url: string;
  /** A token, or a function giving a fresh one for each connection attempt (tokens expire). */
  token: string | (() => string | Promise<string>);
  /** Free-form metadata sent in hello (≤ 8 KiB as JSON), e.g. {name, userAgent, cores}. */
  info?: Record<string, unknown>;
  /** Default `globalThis.WebSocket`. In Node 20 pass `WebSocket` from `ws`. */
  WebSocketImpl?: WebSocketConstructorLike;
  backoff?: Partial<BackoffOptions>;
  /** Largest message `send()` accepts, matching the server's limit. Default 64 KiB. */
  maxMessageBytes?: number;
  /** Silence from the server after which the client sends a `ping`. Default 10 000 ms; 0 turns keepalive off. */
  keepaliveIdleMs?: number;
  /** Silence after which the connection counts as dead: dropped and reconnected. Default 20 000 ms. */
  keepaliveTimeoutMs?: number;
}

/** Default silence before a `ping` (ms); one ping per 10 s costs 0.1 msg/s of the server's 50/s bucket. */
export const KEEPALIVE_IDLE_MS = 10_000;
/** Default silence before the connection is given up (ms): a frozen server is left within ~20 s. */
export const KEEPALIVE_TIMEOUT_MS = 20_000;
/** Close code the client uses when it gives up on a silent server (4000-4999: private use, RFC 6455 §7.4.2). */
export const KEEPALIVE_CLOSE_CODE = 4000;

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 10_000, factor: 2, jitter: 0.5 };
const OPEN = 1;
const encoder = new TextEncoder();

/**
 * A reconnecting signaling connection.
 *
 * @example
 * ```ts
 * import { WebSocket } from 'ws'; // Node only; browsers use the global WebSocket
 * const client = new SignalingClient({ url, token, info: { name: 'ingress-1' }, WebSocketImpl: WebSocket });
 * client.onwelcome = (msg) => resetPeers(msg.peers);
 * client.onjoin = (peer) => addPeer(peer);
 * client.onleave = (id) => removePeer(id);
 * client.onsignal = (from, data) => rtc.handle(from, data);
 * client.start();
 * ```
 */
export class SignalingClient {
  /**
   * The connection was welcomed. Without `message.more`, `message.peers` is the authoritative
   * peer list (of the other role); with it, they are only the first chunk and {@link onpeers}
   * brings the whole list.
   */
  onwelcome: ((message: WelcomeMessage) => void) | null = null;
  /**
   * The whole authoritative peer list, collected from a welcome that said `more` and the `peers`
   * chunks after it (or from a resync's chunks): replace what you know with it. Not called for a
   * welcome without `more` (its peers are the whole list already).
   */
  onpeers: ((peers: PeerInfo[]) => void) | null = null;
  onjoin: ((peer: PeerInfo) => void) | null = null;
  onleave: ((id: string, reason: string) => void) | null = null;
  /** A peer's info changed (an operator drained or resumed a host). */
  onupdate: ((peer: PeerInfo) => void) | null = null;
  onsignal: ((from: string, data: unknown) => void) | null = null;
  /** The deployed apps' active versions: after each welcome and whenever they change. */
  onapps: ((apps: AppRef[]) => void) | null = null;
  /** Signaling asks this host to load a candidate version (a deploy's check); answer with {@link checked}. */
  oncheck: ((check: CheckMessage) => void) | null = null;
  /** Ingresses: signaling asks for a scheduled run (a cron tick); answer with {@link cronResult}. */
  oncron: ((message: CronMessage) => void) | null = null;
  /** Fresh ICE servers (TURN credentials) replacing those of the welcome, before they expire. */
  onice: ((iceServers: IceServer[]) => void) | null = null;
  /** Ingresses in a cluster: the live ingresses, K and the peer key (docs/cluster.md). A single node never sends it. */
  oncluster: ((message: ClusterMessage) => void) | null = null;
  /** An error reported by the server; `to` is set for SIG_UNKNOWN_PEER. */
  onerror: ((code: SignalingErrorCode, message: string, to?: string) => void) | null = null;
  onstatechange: ((state: SignalingClientState) => void) | null = null;

  readonly #url: string;
  readonly #token: SignalingClientOptions['token'];
  readonly #info: Record<string, unknown>;
  readonly #WebSocket: WebSocketConstructorLike;
  readonly #backoff: BackoffOptions;
  readonly #maxMessageBytes: number;
  #socket: WebSocketLike | null = null;
  #id: string | null = null;
  #status: AppStatus[] | null = null;
  #state: SignalingClientState = 'closed';
  #stopped = true;
  /** Attempts since the last welcome; drives the back-off. */
  #failures = 0;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Bumped by close(), so a connect awaiting its token from before a close/start pair gives up. */
  #generation = 0;
  readonly #keepaliveIdleMs: number;
  readonly #keepaliveTimeoutMs: number;
  /** When the server was last heard on the current socket (ms, Date.now). */
  #lastHeard = 0;
  #keepaliveTimer: ReturnType<typeof setTimeout> | null = null;
  /** A peer list being collected from `peers` chunks; null when none is in progress. */
  #peerChunks: PeerInfo[] | null = null;

  constructor(options: SignalingClientOptions) {
    const WebSocketImpl = options.WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket;
    if (WebSocketImpl === undefined) throw new TypeError('no WebSocket available: pass WebSocketImpl (e.g. ws) in Node 20');
    this.#url = options.url;
    this.#token = options.token;
    this.#info = options.info ?? {};
    this.#WebSocket = WebSocketImpl;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#maxMessageBytes = options.maxMessageBytes ?? 64 * 1024;
    this.#keepaliveIdleMs = options.keepaliveIdleMs ?? KEEPALIVE_IDLE_MS;
    this.#keepaliveTimeoutMs = Math.max(this.#keepaliveIdleMs, options.keepaliveTimeoutMs ?? KEEPALIVE_TIMEOUT_MS);
  }

  /** This connection's server-assigned id, or null while not welcomed. Changes on reconnect. */
  get id(): string | null {
    return this.#id;
  }

  /** True between `welcome` and the next close. */
  get connected(): boolean {
    return this.#id !== null;
  }

  get state(): SignalingClientState {
    return this.#state;
  }

  /** Connects, and keeps reconnecting until `close()`. Calling it again is a no-op. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#failures = 0;
    void this.#connect();
  }

  /** Closes for good (code 1000) and stops reconnecting. */
  close(): void {
    this.#stopped = true;
    this.#generation += 1;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#stopKeepalive();
    const socket = this.#socket;
    this.#socket = null;
    this.#id = null;
    if (socket !== null) socket.close(1000, 'client closed');
    this.#setState('closed');
  }

  /**
   * Relays `data` to peer `to`. Returns false when not connected (the message is dropped, not
   * queued: after a reconnect the peer ids are new anyway). Throws SIG_MESSAGE_TOO_LARGE rather
   * than let the server close the connection over it.
   */
  send(to: string, data: unknown): boolean {
    if (this.#socket === null || this.#id === null || this.#socket.readyState !== OPEN) return false;
    const text = JSON.stringify({ type: 'signal', to, data });
    if (encoder.encode(text).byteLength > this.#maxMessageBytes) {
      throw new SignalingError('SIG_MESSAGE_TOO_LARGE', `signal exceeds ${this.#maxMessageBytes} bytes`);
    }
    this.#socket.send(text);
    return true;
  }

  /**
   * Answers a `check`: whether the candidate loaded, with its error and how long it took.
   * Returns false when not connected (signaling then times the check out).
   */
  checked(id: string, ok: boolean, error: string, ms: number): boolean {
    if (this.#socket === null || this.#id === null || this.#socket.readyState !== OPEN) return false;
    this.#socket.send(JSON.stringify({ type: 'checked', id, ok, error: error.slice(0, MAX_CHECK_ERROR_LENGTH), ms: Math.max(0, Math.round(ms)) }));
    return true;
  }

  /**
   * Answers a `cron` (ingresses): how the scheduled run went. Returns false when not connected
   * (signaling then times the run out and records it so).
   */
  cronResult(result: Omit<CronResultMessage, 'type'>): boolean {
    if (this.#socket === null || this.#id === null || this.#socket.readyState !== OPEN) return false;
    const { id, ok, code, error, host, ms } = result;
    this.#socket.send(JSON.stringify({ type: 'cron-result', id, ok, code: code.slice(0, 128), error: error.slice(0, MAX_CRON_ERROR_LENGTH), host: host.slice(0, 128), ms: Math.max(0, Math.round(ms)) }));
    return true;
  }

  /**
   * Tells signaling what this host has loaded (hosts only). The latest list is kept and sent
   * again after every reconnect.
   */
  reportStatus(apps: AppStatus[]): void {
    this.#status = apps;
    if (this.#socket === null || this.#id === null || this.#socket.readyState !== OPEN) return;
    this.#socket.send(JSON.stringify({ type: 'status', apps }));
  }

  async #connect(): Promise<void> {
    this.#retryTimer = null;
    this.#setState('connecting');
    const generation = this.#generation;
    let socket: WebSocketLike;
    try {
      const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
      if (generation !== this.#generation) return;
      const url = new URL(this.#url);
      url.searchParams.set('token', token);
      socket = new this.#WebSocket(url.toString());
    } catch {
      // A token function that threw, or a URL the constructor rejected: retry like a failed connect.
      if (generation !== this.#generation) return;
      this.#setState('closed');
      return this.#scheduleReconnect();
    }
    this.#socket = socket;
    socket.addEventListener('open', () => {
      if (this.#socket !== socket) return;
      this.#heard();
      socket.send(JSON.stringify({ type: 'hello', info: this.#info }));
    });
    socket.addEventListener('message', (event) => {
      if (this.#socket !== socket) return;
      this.#heard();
      if (typeof event.data !== 'string') return;
      const message = parseServerMessage(event.data);
      if (message !== null) this.#dispatch(message);
    });
    // Always followed by 'close'; listening keeps Node's ws from throwing an unhandled 'error'.
    socket.addEventListener('error', () => {});
    socket.addEventListener('close', (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      this.#id = null;
      this.#peerChunks = null;
      this.#stopKeepalive();
      // ws closes oversized messages with 1009 without sending an error message first.
      if (event.code === 1009) this.onerror?.('SIG_MESSAGE_TOO_LARGE', 'the server closed the connection: message too large');
      this.#setState('closed');
      this.#scheduleReconnect();
    });
  }

  #dispatch(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        this.#id = message.id;
        this.#failures = 0;
        this.#peerChunks = message.more ? [...message.peers] : null;
        this.#setState('open');
        if (this.#status !== null) this.reportStatus(this.#status);
        this.onwelcome?.(message);
        return;
      case 'peers': {
        // Chunks after a welcome that said `more` continue its list; chunks without one (a
        // resync) start a fresh list.
        const list = this.#peerChunks ?? [];
        for (const peer of message.peers) list.push(peer);
        this.#peerChunks = message.done ? null : list;
        if (message.done) this.onpeers?.(list);
        return;
      }
      case 'pong':
        return; // hearing it was the point (#heard)
      case 'join':
        this.onjoin?.(message.peer);
        return;
      case 'apps':
        this.onapps?.(message.apps);
        return;
      case 'ice':
        this.onice?.(message.iceServers);
        return;
      case 'check':
        this.oncheck?.(message);
        return;
      case 'cron':
        this.oncron?.(message);
        return;
      case 'cluster':
        this.oncluster?.(message);
        return;
      case 'update':
        this.onupdate?.(message.peer);
        break;
      case 'leave':
        this.onleave?.(message.id, message.reason);
        return;
      case 'signal':
        this.onsignal?.(message.from, message.data);
        return;
      case 'error':
        this.onerror?.(message.code, message.message, message.to);
        return;
    }
  }

  /** Any message (or the open) from the server: the connection is alive; re-arm the keepalive. */
  #heard(): void {
    this.#lastHeard = Date.now();
    if (this.#keepaliveIdleMs > 0 && this.#keepaliveTimer === null) this.#armKeepalive(this.#keepaliveIdleMs);
  }

  #armKeepalive(delayMs: number): void {
    // One timer that looks at #lastHeard when it fires, rather than one re-armed per message.
    this.#keepaliveTimer = setTimeout(() => this.#checkKeepalive(), delayMs);
  }

  #checkKeepalive(): void {
    this.#keepaliveTimer = null;
    const socket = this.#socket;
    if (socket === null) return;
    const silentMs = Date.now() - this.#lastHeard;
    if (silentMs >= this.#keepaliveTimeoutMs) return this.#giveUp(socket, silentMs);
    if (silentMs >= this.#keepaliveIdleMs) {
      if (socket.readyState === OPEN) socket.send(JSON.stringify({ type: 'ping' }));
      return this.#armKeepalive(this.#keepaliveTimeoutMs - silentMs);
    }
    this.#armKeepalive(this.#keepaliveIdleMs - silentMs);
  }

  /**
   * The server has been silent too long (a frozen machine, a silent partition). The closing
   * handshake could not complete either, so the socket is abandoned at once rather than after
   * its close event.
   */
  #giveUp(socket: WebSocketLike, silentMs: number): void {
    this.#socket = null;
    this.#id = null;
    this.#peerChunks = null;
    try {
      const terminate = (socket as { terminate?: () => void }).terminate;
      if (typeof terminate === 'function') terminate.call(socket); // ws: destroy the TCP socket now
      else socket.close(KEEPALIVE_CLOSE_CODE, 'keepalive timeout');
    } catch {
      // Already closing: nothing more to do with it.
    }
    this.onerror?.('SIG_KEEPALIVE_TIMEOUT', `no message from the server for ${Math.round(silentMs)} ms: reconnecting`);
    this.#setState('closed');
    this.#scheduleReconnect();
  }

  #stopKeepalive(): void {
    if (this.#keepaliveTimer !== null) clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = null;
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#retryTimer !== null) return;
    const { initialMs, maxMs, factor, jitter } = this.#backoff;
    const base = Math.min(maxMs, initialMs * factor ** this.#failures);
    this.#failures += 1;
    const delay = base * (1 - Math.min(1, Math.max(0, jitter)) * Math.random());
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  #setState(state: SignalingClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.onstatechange?.(state);
  }
}
