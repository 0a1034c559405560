/**
 * `WebSocketPair` and the server end of a socket, as Cloudflare Workers give them to handlers
 * (https://developers.cloudflare.com/workers/runtime-apis/websockets/), inside a sandbox worker.
 *
 * The handler keeps `pair[1]` (the server end), calls `accept()`, and returns
 * `new Response(null, { status: 101, webSocket: pair[0] })`. The runtime (worker-runtime.ts)
 * then {@link attach}es the server end to a `MessagePort` whose other end goes to the host page,
 * which carries the socket's messages over the request's stream (browser-host/ws-bridge.ts).
 * Until then, and until `accept()`, what is sent is queued and what arrives waits.
 *
 * Events are dispatched one message per port message, and each is acknowledged after its
 * listeners ran: the host hands credit back to the ingress only for acknowledged bytes, so a
 * handler that reads slowly slows the client down instead of filling memory.
 */
import type { WsFromHost, WsToHost } from './messages.ts';

/** WebSocket ready states (https://websockets.spec.whatwg.org/#dom-websocket-readystate). */
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const encoder = new TextEncoder();

/**
 * One end of a {@link WebSocketPair}. Only the server end (the one the handler accepts) does
 * anything: the client end stands for the visitor's socket and is handed to the Response.
 */
export class WorkerWebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;
  readonly url: string | null = null;
  readonly protocol = '';
  readonly extensions = '';
  binaryType: 'arraybuffer' | 'blob' = 'arraybuffer';
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onopen: ((event: Event) => void) | null = null;
  /** @internal The other end of the pair. */
  peer: WorkerWebSocket | null = null;
  #state = CONNECTING;
  #accepted = false;
  #port: MessagePort | null = null;
  /** Sent before the socket was attached to the host. */
  #outbox: WsToHost[] = [];
  /** Arrived before `accept()`. */
  #inbox: WsFromHost[] = [];
  #closeSent = false;

  get readyState(): number {
    return this.#state;
  }

  /** Starts delivering events (Workers: a server socket must be accepted before it is used). */
  accept(): void {
    if (this.#accepted) return;
    this.#accepted = true;
    if (this.#state === CONNECTING) this.#state = OPEN;
    for (const m of this.#inbox.splice(0)) this.#receive(m);
  }

  /** Sends a text (string) or binary (ArrayBuffer, a view) message. */
  send(data: string | ArrayBuffer | ArrayBufferView): void {
    if (!this.#accepted) throw new DOMException('the WebSocket must be accepted before it can send', 'InvalidStateError');
    if (this.#state !== OPEN) throw new TypeError("Can't call WebSocket send() after close().");
    let message: WsToHost;
    if (typeof data === 'string') message = { t: 'send', data };
    else if (data instanceof ArrayBuffer) message = { t: 'send', data: data.slice(0) };
    else if (ArrayBuffer.isView(data)) message = { t: 'send', data: (data.buffer as ArrayBuffer).slice(data.byteOffset, data.byteOffset + data.byteLength) };
    else message = { t: 'send', data: String(data) };
    this.#post(message);
  }

  /** Closes the socket; `code` 1000 or 3000-4999, a reason of at most 123 bytes (RFC 6455). */
  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999) && !RESERVED_OK.has(code)) {
      throw new DOMException(`invalid close code ${code}`, 'InvalidAccessError');
    }
    const why = reason ?? '';
    if (encoder.encode(why).byteLength > 123) throw new DOMException('the close reason is longer than 123 bytes', 'SyntaxError');
    if (this.#closeSent) return;
    this.#closeSent = true;
    if (this.#state === OPEN || this.#state === CONNECTING) this.#state = CLOSING;
    this.#post({ t: 'close', code: code ?? 0, reason: why });
  }

  /** @internal Connects the server end to the host page's port (worker-runtime.ts). */
  attach(port: MessagePort): void {
    this.#port = port;
    port.onmessage = (event) => {
      const m = event.data as WsFromHost;
      if (!this.#accepted) this.#inbox.push(m);
      else this.#receive(m);
    };
    for (const m of this.#outbox.splice(0)) port.postMessage(m);
  }

  #post(message: WsToHost): void {
    if (!this.#port) return void this.#outbox.push(message);
    if (message.t === 'send' && message.data instanceof ArrayBuffer) this.#port.postMessage(message, [message.data]);
    else this.#port.postMessage(message);
  }

  #receive(m: WsFromHost): void {
    if (m.t === 'message') {
      if (this.#state === CLOSED) return;
      const event = new MessageEvent('message', { data: m.data });
      this.onmessage?.(event);
      this.dispatchEvent(event);
      this.#port?.postMessage({ t: 'ack', bytes: m.bytes } satisfies WsToHost);
      return;
    }
    if (this.#state === CLOSED) return;
    if (m.t === 'error') {
      const event = new Event('error');
      Object.defineProperty(event, 'message', { value: m.message });
      this.onerror?.(event);
      this.dispatchEvent(event);
      return;
    }
    // The peer closed (or the connection was lost: 1006). Workers reply to a close the handler
    // leaves unanswered (compatibility flag web_socket_auto_reply_to_close, default since 2024).
    const clean = m.code !== 1006;
    this.#state = CLOSING;
    const event = new CloseEvent('close', { code: m.code === 0 ? 1005 : m.code, reason: m.reason, wasClean: clean });
    this.#state = CLOSED;
    this.onclose?.(event);
    this.dispatchEvent(event);
    if (!this.#closeSent && clean) {
      this.#closeSent = true;
      this.#post({ t: 'close', code: m.code, reason: m.reason });
    }
  }
}

/** Codes a handler may send that the browser's WebSocket would refuse, but Workers allow. */
const RESERVED_OK = new Set([1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]);

/**
 * `new WebSocketPair()`: `0` is the client end (for the Response), `1` the server end (for the
 * handler), as in Workers.
 *
 * @example
 * ```ts
 * const { 0: client, 1: server } = new WebSocketPair();
 * server.accept();
 * server.addEventListener('message', (e) => server.send(e.data));
 * return new Response(null, { status: 101, webSocket: client });
 * ```
 */
export class WebSocketPair {
  readonly 0: WorkerWebSocket;
  readonly 1: WorkerWebSocket;
  constructor() {
    const client = new WorkerWebSocket();
    const server = new WorkerWebSocket();
    client.peer = server;
    server.peer = client;
    this[0] = client;
    this[1] = server;
  }
}

/** Puts `WebSocketPair` in the worker's global (the browser's own `WebSocket` stays, for outbound sockets). */
export function installWebSocketPair(scope: Record<string, unknown> = globalThis as unknown as Record<string, unknown>): void {
  scope['WebSocketPair'] = WebSocketPair;
}

/** The server end of the socket a 101 response carries (its `webSocket`), or null. */
export function serverEndOf(response: Response): WorkerWebSocket | null {
  const client = (response as Response & { webSocket?: unknown }).webSocket;
  if (!(client instanceof WorkerWebSocket) || !client.peer) return null;
  return client.peer;
}
