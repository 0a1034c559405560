/**
 * WebSockets to handlers: the visitor's socket ends here, and its messages travel on the
 * request's stream as WS_DATA/WS_CLOSE frames (docs/protocol.md, "WebSocket streams") to the
 * handler's server end in a tab (docs/apps.md, "WebSockets").
 *
 * Memory per socket is bounded both ways. Visitor → handler: each message is written to the
 * stream against its credit; while more than {@link WsGatewayOptions.highWaterBytes} wait for
 * credit the visitor's socket is paused (ws `pause()`: the ingress stops reading its TCP
 * socket), so a visitor sending faster than the handler reads is slowed to the handler's pace.
 * Handler → visitor: credit is handed back to the host only while the visitor's socket has
 * less than the same high-water mark unsent, and a message is reassembled up to
 * `maxMessageBytes` at most.
 *
 * Close codes pass both ways unchanged (RFC 6455 §7.4; 1005 travels as 0, "no code"). When the
 * stream fails, the visitor gets 1012 (the host went away: tab closed, crashed, lost) or 1011
 * (anything else: the handler or the host failed).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HeaderList, Stream } from '../protocol/index.ts';
import { forwardResponseHeaders } from './http-headers.ts';

import { WS_GATEWAY_DEFAULTS, type WsGatewayOptions } from './ws-defaults.ts';

export { WS_GATEWAY_DEFAULTS, type WsGatewayOptions };

/** Stream error codes that mean the host (its session) went away: 1012, not 1011. */
const HOST_GONE = new Set(['PROTO_SESSION_CLOSED', 'PROTO_HEARTBEAT_TIMEOUT', 'HOST_SANDBOX_RECYCLED', 'HOST_SANDBOX_CLOSED']);
/** Response headers the ingress's own handshake sets (ws writes them). */
const HANDSHAKE_HEADERS = new Set(['sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions', 'upgrade', 'connection', 'content-length', 'transfer-encoding']);

/** Counters for health and tests. */
export interface WsGatewayStats {
  /** Sockets open now. */
  open: number;
  /** Sockets accepted since start. */
  accepted: number;
  /** Visitor bytes read and not yet written to a stream, over all sockets. */
  bufferedBytes: number;
  /** The most `bufferedBytes` has been. */
  maxBufferedBytes: number;
}

interface Pending {
  headers: string[];
  protocol: string | null;
}

/**
 * The ingress's WebSockets to handlers.
 *
 * @example
 * ```ts
 * const gateway = new WsGateway({ maxMessageBytes: 64 * 1024 });
 * if (gateway.admit(host.id)) gateway.accept(req, stream, host.id, head.headers, [['dcdn-host', host.name]]);
 * ```
 */
export class WsGateway {
  readonly options: WsGatewayOptions;
  readonly stats: WsGatewayStats = { open: 0, accepted: 0, bufferedBytes: 0, maxBufferedBytes: 0 };
  readonly #wss: WebSocketServer;
  readonly #perHost = new Map<string, number>();
  readonly #sockets = new Set<WebSocket>();
  readonly #pending = new WeakMap<IncomingMessage, Pending>();

  constructor(options: Partial<WsGatewayOptions> = {}) {
    this.options = { ...WS_GATEWAY_DEFAULTS, ...options };
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.options.maxMessageBytes,
      // Handlers see messages as sent; compression is not negotiated.
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (offered, req) => {
        const chosen = this.#pending.get(req)?.protocol;
        return chosen && offered.has(chosen) ? chosen : false;
      },
    });
    this.#wss.on('headers', (lines: string[], req: IncomingMessage) => {
      const pending = this.#pending.get(req);
      if (!pending) return;
      for (let i = 0; i < pending.headers.length; i += 2) lines.push(`${pending.headers[i]}: ${pending.headers[i + 1]}`);
    });
  }

  /** Whether `hostId` may take one more socket. */
  admit(hostId: string): boolean {
    return (this.#perHost.get(hostId) ?? 0) < this.options.maxPerHost;
  }

  /**
   * Completes the visitor's handshake for a stream the host answered 101, and carries the
   * socket until it closes. `headers` are the host's 101 head; `extra` dcdn's own headers.
   */
  accept(req: IncomingMessage, stream: Stream, hostId: string, headers: HeaderList, extra: HeaderList): void {
    const own = headers.filter(([n]) => !HANDSHAKE_HEADERS.has(n.toLowerCase()));
    const protocol = headers.find(([n]) => n.toLowerCase() === 'sec-websocket-protocol')?.[1]?.trim() ?? null;
    this.#pending.set(req, { headers: forwardResponseHeaders(own, extra), protocol });
    this.#perHost.set(hostId, (this.#perHost.get(hostId) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (this.#perHost.get(hostId) ?? 1) - 1;
      if (n <= 0) this.#perHost.delete(hostId);
      else this.#perHost.set(hostId, n);
    };
    const socket = req.socket as Duplex;
    let handed = false;
    // ws refuses a handshake it can't complete with its own 400 and destroys the socket: the
    // stream goes with it.
    socket.once('close', () => {
      if (handed) return;
      this.#pending.delete(req);
      release();
      if (!stream.closed) stream.reset('PROTO_CANCELLED', 'the WebSocket handshake with the visitor failed');
    });
    this.#wss.handleUpgrade(req, socket, upgradeHead(req), (ws) => {
      handed = true;
      this.#pending.delete(req);
      this.stats.open++;
      this.stats.accepted++;
      this.#sockets.add(ws);
      ws.once('close', () => {
        this.stats.open--;
        this.#sockets.delete(ws);
        release();
      });
      this.#bridge(ws, stream);
    });
  }

  /** Closes every socket (the ingress is shutting down): 1001, "going away". */
  closeAll(code = 1001, reason = 'the ingress is shutting down'): void {
    for (const ws of this.#sockets) ws.close(code, reason);
  }

  #bridge(ws: WebSocket, stream: Stream): void {
    const opts = this.options;
    const stats = this.stats;
    let buffered = 0;
    let sending: Promise<void> = Promise.resolve();
    let idle: ReturnType<typeof setTimeout> | undefined;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => closeBoth(1001, 'idle timeout'), opts.idleTimeoutMs);
    };
    /** Closes the visitor's side and the handler's with the same code. */
    const closeBoth = (code: number, reason: string) => {
      if (ws.readyState === ws.OPEN) ws.close(code, reason);
      sendClose(code, reason);
    };
    const sendClose = (code: number, reason: string) => {
      if (!stream.wsWritable) return;
      stream.closeWs(code, reason);
      // The handler has `closeGraceMs` to answer with its own close.
      graceTimer = setTimeout(() => stream.reset('PROTO_CANCELLED', 'the handler did not answer the close'), opts.closeGraceMs);
      graceTimer.unref?.();
    };
    touch();

    // Visitor → handler.
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      touch();
      if (!stream.wsWritable) return;
      const n = data.byteLength;
      buffered += n;
      stats.bufferedBytes += n;
      stats.maxBufferedBytes = Math.max(stats.maxBufferedBytes, stats.bufferedBytes);
      if (buffered >= opts.highWaterBytes) ws.pause();
      // One message at a time: a stream's sends must not interleave (stream.ts, sendWs).
      sending = sending.then(() => stream.sendWs(data, isBinary)).then(
        () => {
          buffered -= n;
          stats.bufferedBytes -= n;
          if (ws.isPaused && buffered < opts.highWaterBytes) ws.resume();
        },
        () => {
          buffered -= n;
          stats.bufferedBytes -= n;
        },
      );
    });
    ws.on('close', (code: number, reason: Buffer) => {
      clearTimeout(idle);
      // 1005: the visitor gave no code; 0 says so on the wire.
      sendClose(code === 1005 ? 0 : code, reason.toString('utf8'));
      if (!stream.wsWritable && stream.closed) clearTimeout(graceTimer);
    });
    ws.on('error', () => {
      // 'close' follows with the code ws chose (1009 for a message over maxPayload, 1002...).
    });

    // Handler → visitor.
    let pieces: Buffer[] = [];
    let pieceBytes = 0;
    let owed = 0;
    const settle = () => {
      if (owed > 0 && ws.bufferedAmount < opts.highWaterBytes) {
        stream.consume(owed);
        owed = 0;
      }
    };
    stream.onwsdata = (data, binary, fin) => {
      touch();
      owed += data.byteLength;
      pieceBytes += data.byteLength;
      if (pieceBytes > opts.maxMessageBytes) {
        pieces = [];
        pieceBytes = 0;
        return closeBoth(1009, 'message too big');
      }
      pieces.push(Buffer.from(data)); // a copy: the view points into the channel message
      if (fin) {
        const message = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, pieceBytes);
        pieces = [];
        pieceBytes = 0;
        if (ws.readyState === ws.OPEN) ws.send(message, { binary }, settle);
      }
      settle();
    };
    stream.onwsclose = (code, reason) => {
      clearTimeout(graceTimer);
      if (ws.readyState === ws.OPEN) {
        if (code === 0) ws.close();
        else if (sendable(code)) ws.close(code, reason);
        else ws.close(1011, reason);
      }
      // The visitor's echo comes as 'close', which answers the handler.
    };
    stream.onreset = (err) => {
      clearTimeout(graceTimer);
      clearTimeout(idle);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
        const gone = HOST_GONE.has(err.code);
        ws.close(gone ? 1012 : 1011, gone ? 'the host went away' : 'the handler failed');
      }
    };
  }
}

/** Whether the request asks to become a WebSocket (RFC 6455 §4.1: `Upgrade: websocket`). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return req.headers.upgrade?.toLowerCase().split(',').some((p) => p.trim() === 'websocket') ?? false;
}

/**
 * What is wrong with a WebSocket opening handshake (RFC 6455 §4.2.1), decided before any host
 * is contacted; null when it is fine.
 */
export function webSocketRequestProblem(req: IncomingMessage, hasBody: boolean): string | null {
  if (req.method !== 'GET') return `a WebSocket opening handshake must be a GET, not ${req.method}`;
  if (hasBody) return 'a WebSocket opening handshake has no body';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(key.trim())) return 'Sec-WebSocket-Key is missing or not 16 bytes of base64';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version must be 13';
  return null;
}

/** Close codes an endpoint may send (RFC 6455 §7.4.1-2; ws refuses the others). */
function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * The bytes that came after the upgrade request's head on its socket (@fastify/websocket keeps
 * them on the request under a private symbol). Usually empty: a client waits for the 101.
 */
function upgradeHead(req: IncomingMessage): Buffer {
  for (const sym of Object.getOwnPropertySymbols(req)) {
    if (sym.description === 'ws-head') {
      const head = (req as unknown as Record<symbol, unknown>)[sym];
      if (Buffer.isBuffer(head)) return head;
    }
  }
  return Buffer.alloc(0);
}
