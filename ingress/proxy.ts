import type { IncomingMessage, ServerResponse } from 'node:http';
import { APP_FAILURE_CODES, headProblem, isErrorCode, SCHEDULED_METHOD, WS_FRAME_VERSION, type AppRef, type ErrorCode, type HeaderList, type Stream, type StreamError } from '../protocol/index.ts';
import type { ForwardResult } from './peer-forward.ts';
import { sendError } from './error-response.ts';
import type { AppRouter } from './app-router.ts';
import { mayServe, VOLUNTEER_WITHHELD_HEADERS } from './host-traits.ts';
import type { HostConnection, HostPool } from './host-pool.ts';
import { resolveTarget } from './request-target.ts';
import { checkResponseHead, declaredLength, forwardRequestHeaders, forwardResponseHeaders, type ForwardingPolicy } from './http-headers.ts';
import { REQUEST_ID_HEADER, type RequestTrace } from './request-id.ts';
import { isWebSocketUpgrade, webSocketRequestProblem, type WsGateway } from './ws-gateway.ts';
import type { RequestTiming } from './request-timing.ts';

/** Named limits and timeouts of the forwarding path; see docs/ingress.md. */
export interface ProxyOptions {
  /** Time from the end of the request body to the response head. Default 30000 ms. */
  headTimeoutMs: number;
  /** Longest pause in a request or response body. Default 60000 ms. */
  idleTimeoutMs: number;
  /**
   * Slowest request body accepted, averaged over the time the ingress spent waiting for the
   * client (time the host held the upload back does not count). Checked once
   * `bodyRateGraceMs` of waiting has passed; a slower upload is answered 408
   * INGRESS_REQUEST_TIMEOUT and its stream cancelled. 0 turns the check off. Default 1024.
   */
  minBodyBytesPerSecond: number;
  /** Waiting time a request body gets before `minBodyBytesPerSecond` applies. Default 10000 ms. */
  bodyRateGraceMs: number;
  /** Largest request body. Default 100 MiB. */
  maxBodyBytes: number;
  /** Longest request target (path and query). Default 8192. */
  maxUrlLength: number;
  /** Largest total of request header names and values. Default 16384. */
  maxHeaderBytes: number;
  /** Retry GET and HEAD on another host when one fails before the head. Default true. */
  retryIdempotent: boolean;
  /**
   * How many hosts a body-less GET or HEAD is tried on, at most, when each goes away or refuses
   * before the response head. Above 2 because hosts die together (a machine, a browser with
   * several tabs): the retry can meet another host that died in the same instant, before the
   * pool has noticed. Default 3.
   */
  idempotentAttempts: number;
  /**
   * How long a host gets to end a response stream whose body has reached its Content-Length
   * (the client's response is already complete and the host's slot free); the stream is then
   * cancelled. Bytes past the length meanwhile are an error. Default 1000 ms.
   */
  lengthEndGraceMs: number;
  forwarding: ForwardingPolicy;
  router: AppRouter;
  /** WebSockets to handlers (ws-gateway.ts); without it an upgrade to an app gets 501. */
  webSockets?: WsGateway;
}

// In a module of its own so that `dcdn --help` can print them without loading the proxy.
export { PROXY_DEFAULTS } from './proxy-defaults.ts';

/**
 * Methods the ingress answers itself with 501 INGRESS_NOT_IMPLEMENTED instead of forwarding:
 * a Web `Request` can't be built with them (the host could not run them), and TRACE through a
 * proxy reflects credentials back to scripts (cross-site tracing). CONNECT never gets here:
 * server.ts answers it on Node's `connect` event.
 */
const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);

/** Codes a host may send that mean "not served here; another host may do it". */
const HOST_REFUSALS = new Set(['PROTO_TOO_MANY_STREAMS', 'HOST_OVERLOADED', 'HOST_NO_APP', 'HOST_SANDBOX_RECYCLED', 'HOST_SANDBOX_CLOSED']);
/** Codes that mean the session to the host died under the stream. */
const HOST_GONE = new Set(['PROTO_SESSION_CLOSED', 'PROTO_HEARTBEAT_TIMEOUT']);

export interface ProxyEvents {
  log(level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>): void;
  /** The request was sent to `host` (each attempt; the last is the one that answered). */
  sent?(host: HostConnection): void;
  /** Set for a timed request (request-timing.ts): stamped as the request goes through. */
  timing?: RequestTiming;
}

/** What a request needs of the cluster (peer-forward.ts); absent outside a cluster. */
export interface ProxyCluster {
  /** The `dcdn-via` value on answers this ingress makes: its name, or `<forwarder>,<name>` on the peer listener. */
  via: string;
  /**
   * Hands a request no local host can take to a peer ingress, before any of its body is read.
   * Returns null when no peer may take it (none attached to an eligible host, no peer key, or
   * the request itself came from a peer: a forward is never forwarded again).
   */
  forward?: (f: { app: AppRef | undefined; localError: 'INGRESS_NO_HOST' | 'INGRESS_HOSTS_BUSY'; headers: HeaderList; hasBody: boolean }) => Promise<ForwardResult> | null;
}

/**
 * The HTTP cache's part in a request (ingress/cache/); absent when the cache is off. The proxy
 * asks it once the request is routed, and tells it the host's head, body and failures.
 */
export interface ProxyCache {
  /**
   * The cache's say on a routed request: null when it answered the client itself (a hit), else
   * the exchange to forward with. A promise while the request waits for another that fetches
   * the same response (coalescing).
   */
  begin(r: { app: string; url: string; req: IncomingMessage; res: ServerResponse; headers: HeaderList }): CacheExchange | null | Promise<CacheExchange | null>;
}

/** One forwarded request as the cache sees it. */
export interface CacheExchange {
  /** The headers to send the host (validators added or the client's removed). */
  readonly headers: HeaderList;
  /** The `dcdn-cache` value of this request's answers (MISS or BYPASS). */
  readonly label: string;
  /**
   * The host's head. 'answered' when the cache answered the client from what it holds (a 304
   * confirming a stored response, or a stale one under stale-if-error); else where the body is
   * to be copied (null: it is not stored).
   */
  onHead(status: number, headers: HeaderList): 'answered' | CacheSink | null;
  /** The exchange failed before a head; true when a stored response answered instead (stale-if-error). */
  onError(code: ErrorCode): boolean;
  /** The exchange is over, however it ended (called once, after the sink's end or abort). */
  done(): void;
}

/** Takes a copy of a response body as it streams to the client. */
export interface CacheSink {
  write(chunk: Uint8Array): void;
  end(): void;
  /** The response was cut: nothing is stored. */
  abort(): void;
}

/**
 * Forwards one HTTP request to a host and streams the answer back.
 *
 * Status mapping (the only place it happens, via `sendError`):
 * 400/413/414/431/501 from the request head are decided before any host is contacted; 413 for
 * a chunked body past the limit and 408 for a body that stalls or trickles are decided while
 * the body streams to the host, whose stream is then cancelled; 503 when no host can take it;
 * 504 when the head does not come in time; 502 when the host answers badly or goes away before
 * the head. After the head the status can't change, so a failure cuts the connection.
 * See docs/ingress.md.
 */
export class ProxyRequest {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #pool: HostPool;
  readonly #opts: ProxyOptions;
  readonly #events: ProxyEvents;
  readonly #trace: RequestTrace | undefined;
  readonly #cluster: ProxyCluster | undefined;
  readonly #tried = new Set<string>();
  /** The peer ingress the request was handed to, if it was. */
  #peer: string | undefined;
  #url = '';
  #app = '';
  #headers: Array<[string, string]> = [];
  #hasBody = false;
  /** A WebSocket upgrade the gateway will complete if the handler answers 101. */
  #webSocket = false;
  #host: HostConnection | null = null;
  #stream: Stream | null = null;
  #headTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** The request body's timers: they outlive the exchange while the rest of the body drains. */
  #bodyIdleTimer: ReturnType<typeof setTimeout> | undefined;
  #rateTimer: ReturnType<typeof setTimeout> | undefined;
  /** The host whose in-flight count this request holds, if any. */
  #counted: HostConnection | null = null;
  #lastHost: string | undefined;
  #lastTransport: string | undefined;
  #lastVolunteer = false;
  #errorCode: ErrorCode | undefined;
  #bodyStarted = false;
  #bytesIn = 0;
  #bytesOut = 0;
  #finished = false;
  readonly #cache: ProxyCache | undefined;
  #exchange: CacheExchange | null = null;
  #sink: CacheSink | null = null;
  #resolve!: () => void;
  readonly done: Promise<void>;

  /**
   * @param trace The request's id and trace context (request-id.ts): the host receives them as
   * `dcdn-request-id` and `traceparent`, replacing whatever the client sent under those names.
   * @param cluster In a cluster: the `dcdn-via` name and the hand-off to peers.
   */
  constructor(req: IncomingMessage, res: ServerResponse, pool: HostPool, opts: ProxyOptions, events: ProxyEvents, trace?: RequestTrace, cluster?: ProxyCluster, cache?: ProxyCache) {
    this.#cluster = cluster;
    this.#cache = cache;
    this.#req = req;
    this.#res = res;
    this.#pool = pool;
    this.#opts = opts;
    this.#events = events;
    this.#trace = trace;
    this.done = new Promise((r) => (this.#resolve = r));
  }

  /** Name of the host that answered (or was last tried), for the access log. */
  get hostName(): string | undefined {
    return this.#lastHost;
  }

  /** The peer ingress the request was forwarded to, if it was. */
  get forwardedTo(): string | undefined {
    return this.#peer;
  }

  /** The error code this request was answered (or cut) with, if any. */
  get errorCode(): ErrorCode | undefined {
    return this.#errorCode;
  }

  /** The app the request was routed to; '' before routing, when it failed, or without a control plane. */
  get appName(): string {
    return this.#app;
  }

  /** The transport of the host that answered (or was last tried); undefined when none was. */
  get transport(): string | undefined {
    return this.#lastTransport;
  }

  /** Whether the host that answered (or was last tried) is a volunteer's. */
  get hostVolunteer(): boolean {
    return this.#lastVolunteer;
  }

  /** Request body bytes read from the client. */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** Response body bytes written to the client. */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** Validates the request, then sends it to a host. Resolves when the exchange is over. */
  run(): Promise<void> {
    const req = this.#req;
    const rejection = this.#validate();
    if (rejection) {
      this.#fail(rejection[0], rejection[1], { connection: 'close' });
      return this.done;
    }
    this.#res.on('close', () => {
      if (!this.#finished) this.#cancel('PROTO_CANCELLED', 'the client went away');
    });
    req.on('error', () => this.#cancel('PROTO_CANCELLED', 'the client connection failed'));
    if (!this.#cache) {
      this.#attempt();
      return this.done;
    }
    const decided = this.#cache.begin({ app: this.#app, url: this.#url, req, res: this.#res, headers: this.#headers });
    if (decided instanceof Promise) decided.then((ex) => this.#withCache(ex), () => this.#withCache(null));
    else this.#withCache(decided);
    return this.done;
  }

  /** Forwards with the cache's exchange, or ends here when the cache answered. */
  #withCache(exchange: CacheExchange | null): void {
    // The client left while the request waited: an exchange made for it still has to end, or
    // the requests waiting behind it would wait for nothing.
    if (this.#finished) return exchange?.done();
    if (!exchange) return this.#finish();
    this.#exchange = exchange;
    this.#headers = exchange.headers;
    this.#attempt();
  }

  #validate(): [ErrorCode, string] | null {
    const req = this.#req;
    const target = req.url ?? '';
    if (req.httpVersionMajor !== 1) return ['INGRESS_BAD_REQUEST', `HTTP/${req.httpVersion} is not spoken here: use HTTP/1.1`];
    if (target.length > this.#opts.maxUrlLength) return ['INGRESS_URL_TOO_LONG', `the URL is longer than ${this.#opts.maxUrlLength} bytes`];
    let headerBytes = 0;
    for (const h of req.rawHeaders) headerBytes += h.length;
    if (headerBytes > this.#opts.maxHeaderBytes) return ['INGRESS_HEADERS_TOO_LARGE', `headers exceed ${this.#opts.maxHeaderBytes} bytes`];
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one Host.
    let hosts = 0;
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
    if (hosts > 1 || (hosts === 0 && req.httpVersionMinor >= 1)) return ['INGRESS_BAD_REQUEST', hosts ? 'more than one Host header' : 'an HTTP/1.1 request needs a Host header'];
    if (REFUSED_METHODS.has(req.method ?? '')) return ['INGRESS_NOT_IMPLEMENTED', `the ingress does not forward ${req.method} requests`];
    // The scheduled-event marker (protocol/scheduled-wire.ts): only signaling's cron runs send it.
    if ((req.method ?? '').toUpperCase() === SCHEDULED_METHOD) return ['INGRESS_NOT_IMPLEMENTED', `${SCHEDULED_METHOD} is reserved for scheduled events; it is never forwarded`];
    const te = req.headers['transfer-encoding'];
    // RFC 9112 §6.1: a request whose transfer coding is not exactly chunked can't be framed
    // reliably; passing it on is how smuggling starts.
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return ['INGRESS_BAD_REQUEST', `unsupported transfer-encoding ${JSON.stringify(te.slice(0, 40))}`];
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > this.#opts.maxBodyBytes) {
      return ['INGRESS_BODY_TOO_LARGE', `the body is larger than ${this.#opts.maxBodyBytes} bytes`];
    }
    // The handler's URL is this request's own scheme, Host and path, whatever the target looks
    // like (request-target.ts); the router decides on the same normalised path the handler sees.
    const protocol = this.#opts.forwarding.protocol;
    const resolved = resolveTarget(target, req.headers.host ?? 'localhost', protocol);
    if ('error' in resolved) return [resolved.error, resolved.message];
    const route = this.#opts.router.route(req.headers.host, resolved.path);
    if ('unknown' in route) return ['INGRESS_UNKNOWN_APP', `no app named ${JSON.stringify(route.unknown)} is deployed`];
    this.#app = route.app;
    this.#headers = forwardRequestHeaders(req.rawHeaders, req.socket.remoteAddress ?? '', this.#opts.forwarding);
    if (this.#trace) this.#headers = withTrace(this.#headers, this.#trace);
    if (route.prefix) this.#headers.push(['x-forwarded-prefix', route.prefix]);
    // Concatenated, never resolved against a base: a path is a path (`//evil.example/x` too).
    this.#url = `${protocol}://${resolved.authority}${route.target}`;
    // What the host's decoder would refuse is refused here, before any host is contacted.
    const wire = headProblem(this.#url, this.#headers);
    if (wire) return wire.field === 'url' ? ['INGRESS_URL_TOO_LONG', wire.message] : ['INGRESS_HEADERS_TOO_LARGE', wire.message];
    this.#hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
    if ((req as IncomingMessage & { upgrade?: boolean }).upgrade) {
      // Node hands `Upgrade` requests over raw, without parsing a body. One without a body is
      // served as the plain HTTP/1.1 request it also is (RFC 9110 §7.8 lets a server ignore
      // Upgrade: `curl --http2` sends `Upgrade: h2c`); a WebSocket can't be forwarded to an app.
      if (isWebSocketUpgrade(req)) {
        if (!this.#opts.webSockets) return ['INGRESS_NOT_IMPLEMENTED', 'this ingress takes no WebSocket connections to apps'];
        const problem = webSocketRequestProblem(req, this.#hasBody);
        if (problem) return ['INGRESS_BAD_REQUEST', problem];
        // The handler sees the upgrade as Workers show it (Hono checks `Upgrade: websocket`);
        // extensions are not negotiated (ws-gateway.ts), so the client's offer is not passed on.
        this.#webSocket = true;
        this.#headers = this.#headers.filter(([n]) => n.toLowerCase() !== 'sec-websocket-extensions');
        this.#headers.push(['upgrade', 'websocket'], ['connection', 'Upgrade']);
        return null;
      }
      if (this.#hasBody) return ['INGRESS_NOT_IMPLEMENTED', 'an Upgrade request with a body is not forwarded: send it without Upgrade'];
    }
    return null;
  }

  #attempt(): void {
    const app = this.#opts.router.ref(this.#app);
    const gateway = this.#webSocket ? this.#opts.webSockets : undefined;
    // A socket needs a host that speaks WebSocket frames and has room for one more (ws-gateway.ts).
    const picked = this.#pool.pick(this.#tried, Date.now(), (h) => mayServe(h.traits, app) && (!gateway || (h.session.version >= WS_FRAME_VERSION && gateway.admit(h.id))));
    if ('error' in picked) {
      // No host here at all (not one lost on the way): a peer ingress may have one (not for sockets).
      if (this.#tried.size === 0 && this.#cluster?.forward && !gateway) {
        const forwarding = this.#cluster.forward({ app, localError: picked.error, headers: this.#headers, hasBody: this.#hasBody });
        if (forwarding) return this.#handedOff(forwarding);
      }
      const error = this.#tried.size > 0 && picked.error === 'INGRESS_NO_HOST' ? 'INGRESS_HOST_LOST' : picked.error;
      const needs = app ? [app.config.require.length ? `hosts with ${app.config.require.join(', ')}` : '', app.config.volunteers ? '' : "the operator's own hosts (not volunteers)"].filter(Boolean) : [];
      const why = error === 'INGRESS_HOST_LOST' ? 'the host went away and no other host could take the request' : error === 'INGRESS_NO_HOST' && needs.length && this.#pool.size > 0 ? `no connected host may serve ${this.#app}: it needs ${needs.join(' and ')}` : 'no host can take this request now';
      return this.#fail(error, why);
    }
    const host = picked.host;
    this.#tried.add(host.id);
    this.#lastHost = host.name;
    this.#lastTransport = host.transport;
    this.#lastVolunteer = host.traits.volunteer;
    let stream: Stream;
    try {
      const headers = host.traits.volunteer ? this.#headers.filter(([name]) => !VOLUNTEER_WITHHELD_HEADERS.has(name.toLowerCase())) : this.#headers;
      stream = host.session.open({ method: this.#req.method!, url: this.#url, headers, app: this.#app }, !this.#hasBody);
    } catch (err) {
      this.#events.log('warn', 'could not open a stream', { host: host.name, err: (err as Error).message });
      return this.#retryOrFail('INGRESS_HOST_LOST', 'the host session is closing', host);
    }
    this.#host = host;
    this.#stream = stream;
    this.#events.timing?.opened(host.session, stream);
    this.#events.sent?.(host);
    host.inFlight++;
    this.#counted = host;
    stream.onhead = (head) => this.#onHead(head.status, head.headers);
    stream.onreset = (err) => this.#onReset(err);
    if (this.#hasBody) this.#pumpBody(stream);
    else this.#armHeadTimer();
  }

  /** The request went to a peer ingress, which answers the client; this only records how it ended. */
  #handedOff(forwarding: Promise<ForwardResult>): void {
    void forwarding.then((r) => {
      this.#peer = r.peer;
      this.#lastHost = r.host;
      this.#lastTransport = r.transport;
      this.#errorCode = r.code;
      this.#bytesIn += r.bytesIn;
      this.#bytesOut += r.bytesOut;
      this.#finish();
    });
  }

  /**
   * Streams the request body to the host, reading from the client only as fast as the host
   * takes the bytes. Two rules bound how long the ingress waits for the client: the idle
   * timeout (no byte for `idleTimeoutMs`; this one also runs while the host holds the upload
   * back) and the minimum rate (`#armBodyRate`). Breaking either answers 408, or, once the
   * exchange is over, disconnects the client. Once the exchange is over (answered, failed,
   * cancelled) the rest of the body is read and dropped, so the connection stays usable and an
   * error answer is not overtaken by a reset.
   */
  #pumpBody(stream: Stream): void {
    const req = this.#req;
    if (this.#bodyStarted) return; // a body can be sent once: requests with one are never retried
    this.#bodyStarted = true;
    let total = 0;
    /** Time spent waiting for the client's next chunk (not for the host to take the last one). */
    let waited = 0;
    let waitStart = 0;
    const waitForClient = () => {
      waitStart = performance.now();
      this.#armBodyIdle();
      this.#armBodyRate(total, waited);
    };
    const stopTimers = () => {
      clearTimeout(this.#bodyIdleTimer);
      clearTimeout(this.#rateTimer);
    };
    /** The write in progress: 'end' can come while the last chunk still waits for credit. */
    let writing: Promise<void> = Promise.resolve();
    req.on('data', (chunk: Buffer) => {
      waited += performance.now() - waitStart;
      total += chunk.byteLength;
      this.#bytesIn += chunk.byteLength;
      if (this.#finished || stream.closed) return waitForClient(); // dropped
      if (total > this.#opts.maxBodyBytes) {
        stream.reset('INGRESS_BODY_TOO_LARGE', 'request body over the limit');
        this.#fail('INGRESS_BODY_TOO_LARGE', `the body is larger than ${this.#opts.maxBodyBytes} bytes`, { connection: 'close' });
        return waitForClient();
      }
      // Waiting for the host now: the rate rule pauses, the idle timer does not.
      clearTimeout(this.#rateTimer);
      this.#armBodyIdle();
      req.pause();
      const next = () => {
        if (req.destroyed) return;
        waitForClient();
        req.resume();
      };
      // A failed write means the stream was reset; whoever reset it answers the client.
      writing = stream.write(chunk).then(next, next);
    });
    req.once('end', () => {
      clearTimeout(this.#rateTimer);
      void writing.then(() => {
        stopTimers();
        if (stream.closed) return;
        stream.end();
        if (!this.#finished) this.#armHeadTimer();
      });
    });
    req.once('close', stopTimers);
    waitForClient();
  }

  /** The request body's idle timer: no byte from the client (or none taken by the host) for `idleTimeoutMs`. */
  #armBodyIdle(): void {
    clearTimeout(this.#bodyIdleTimer);
    this.#bodyIdleTimer = setTimeout(() => this.#bodyTooSlow(`the request body stalled for ${this.#opts.idleTimeoutMs} ms`), this.#opts.idleTimeoutMs);
  }

  /**
   * The minimum-rate rule for request bodies: after `bodyRateGraceMs` of waiting for the
   * client, it must have sent `minBodyBytesPerSecond` for every second waited. `total` bytes
   * came in `waited` ms; the timer fires when the allowance of the wait now starting runs out.
   */
  #armBodyRate(total: number, waited: number): void {
    clearTimeout(this.#rateTimer);
    const rate = this.#opts.minBodyBytesPerSecond;
    if (!(rate > 0)) return;
    const allowed = Math.max(this.#opts.bodyRateGraceMs, (total / rate) * 1000);
    this.#rateTimer = setTimeout(() => {
      this.#bodyTooSlow(`the request body arrived slower than ${rate} bytes/s (${total} bytes in ${(allowed / 1000).toFixed(1)} s of waiting)`);
    }, Math.max(0, allowed - waited));
  }

  /** A body rule was broken: 408 while the exchange is on; afterwards, the client is cut off. */
  #bodyTooSlow(message: string): void {
    clearTimeout(this.#bodyIdleTimer);
    clearTimeout(this.#rateTimer);
    if (this.#finished) {
      // The answer is out (or failed); only the rest of the body is late. Don't wait for it.
      if (!this.#req.complete) this.#req.socket?.destroy();
      return;
    }
    this.#stream?.reset('INGRESS_REQUEST_TIMEOUT', 'request body too slow');
    this.#events.log('warn', 'request body too slow', { host: this.#host?.name, url: this.#req.url, why: message });
    this.#fail('INGRESS_REQUEST_TIMEOUT', message, { connection: 'close' });
  }

  #armHeadTimer(): void {
    if (this.#res.headersSent || this.#finished) return;
    clearTimeout(this.#headTimer);
    this.#headTimer = setTimeout(() => {
      this.#stream?.reset('INGRESS_HEAD_TIMEOUT', 'no response head in time');
      this.#events.log('warn', 'head timeout', { host: this.#host?.name, url: this.#req.url, ms: this.#opts.headTimeoutMs });
      this.#fail('INGRESS_HEAD_TIMEOUT', `the host sent no response head within ${this.#opts.headTimeoutMs} ms`);
    }, this.#opts.headTimeoutMs);
  }

  /** The response body's idle timer: no byte from the host for `idleTimeoutMs` cuts the response. */
  #armIdle(which: 'response' | null): void {
    clearTimeout(this.#idleTimer);
    if (!which || this.#finished) return;
    this.#idleTimer = setTimeout(() => {
      this.#stream?.reset('INGRESS_IDLE_TIMEOUT', 'body stalled');
      this.#fail('INGRESS_IDLE_TIMEOUT', `the response body stalled for ${this.#opts.idleTimeoutMs} ms`);
    }, this.#opts.idleTimeoutMs);
  }

  #onHead(status: number, headers: Array<[string, string]>): void {
    this.#events.timing?.head();
    const stream = this.#stream!;
    const host = this.#host!;
    clearTimeout(this.#headTimer);
    if (status === 101 && this.#webSocket) return this.#upgraded(stream, host, headers);
    const problem = checkResponseHead(status, headers);
    if (problem) {
      stream.reset('INGRESS_BAD_RESPONSE', problem);
      this.#blame(host, problem);
      return this.#fail('INGRESS_BAD_RESPONSE', `the host's response head was invalid: ${problem}`);
    }
    const res = this.#res;
    const expected = declaredLength(headers);
    const cached = this.#exchange?.onHead(status, headers);
    if (cached === 'answered') {
      this.#pool.reportSuccess(host, this.#app);
      this.#finish();
      if (!stream.closed) stream.reset('PROTO_CANCELLED', 'the cache answered from what it holds');
      return;
    }
    this.#sink = cached ?? null;
    const extra: Array<[string, string]> = [['dcdn-host', host.name], ['dcdn-transport', host.transport]];
    if (this.#exchange) extra.push(['dcdn-cache', this.#exchange.label]);
    if (this.#cluster) extra.push(['dcdn-via', this.#cluster.via]);
    if (this.#trace) extra.push([REQUEST_ID_HEADER, this.#trace.requestId]);
    try {
      res.writeHead(status, forwardResponseHeaders(headers, extra));
    } catch (err) {
      stream.reset('INGRESS_BAD_RESPONSE', 'unsendable head');
      this.#blame(host, (err as Error).message);
      return this.#fail('INGRESS_BAD_RESPONSE', `the host's response head could not be sent: ${(err as Error).message}`);
    }
    if (this.#req.method === 'HEAD') res.flushHeaders();
    // A response to HEAD, a 204 or a 304 has no body, and one that declares Content-Length: 0
    // has nothing to come: it is complete at its head, whether or not the host ends the stream.
    const bodyless = this.#req.method === 'HEAD' || status === 204 || status === 304;
    if (bodyless || expected === 0) return this.#completeByLength(stream, host, bodyless);
    let received = 0;
    let owed = 0;
    this.#armIdle('response');
    stream.ondata = (chunk) => {
      received += chunk.byteLength;
      if (expected !== undefined && received > expected) {
        stream.reset('INGRESS_BAD_RESPONSE', 'body longer than content-length');
        this.#blame(host, 'body longer than its content-length');
        return this.#fail('INGRESS_BAD_RESPONSE', 'body longer than content-length');
      }
      this.#armIdle('response');
      this.#bytesOut += chunk.byteLength;
      this.#sink?.write(chunk);
      // Credit goes back to the host only once the client's socket has taken the bytes.
      if (res.write(chunk)) {
        stream.consume(chunk.byteLength);
      } else {
        owed += chunk.byteLength;
        if (owed === chunk.byteLength) {
          res.once('drain', () => {
            const n = owed;
            owed = 0;
            stream.consume(n);
          });
        }
      }
      if (received === expected) this.#completeByLength(stream, host, false);
    };
    stream.onend = () => {
      if (expected !== undefined && received !== expected) {
        this.#blame(host, `body of ${received} bytes, content-length ${expected}`);
        return this.#fail('INGRESS_BAD_RESPONSE', 'body shorter than content-length');
      }
      this.#pool.reportSuccess(host, this.#app);
      this.#sink?.end();
      this.#sink = null;
      this.#finish();
      res.end();
      this.#events.timing?.ended(res);
      // Answered in full before the request body was done: the host needs no more of it, and a
      // half-open stream would hold state on both sides until the session closes.
      if (!stream.closed) stream.reset('PROTO_CANCELLED', 'the response is complete; the rest of the request body is not needed');
    };
  }

  /** The handler accepted the WebSocket: the gateway completes the visitor's handshake and carries it. */
  #upgraded(stream: Stream, host: HostConnection, headers: Array<[string, string]>): void {
    // Validated as any head (ws writes the lines as they are): 200 stands in for the 101.
    const problem = checkResponseHead(200, headers);
    if (problem) {
      stream.reset('INGRESS_BAD_RESPONSE', problem);
      this.#blame(host, problem);
      return this.#fail('INGRESS_BAD_RESPONSE', `the host's 101 head was invalid: ${problem}`);
    }
    const extra: Array<[string, string]> = [['dcdn-host', host.name], ['dcdn-transport', host.transport]];
    if (this.#cluster) extra.push(['dcdn-via', this.#cluster.via]);
    if (this.#trace) extra.push([REQUEST_ID_HEADER, this.#trace.requestId]);
    this.#pool.reportSuccess(host, this.#app);
    // The request is over for the proxy (its in-flight slot is free); the socket lives on in the gateway.
    this.#finish();
    this.#opts.webSockets!.accept(this.#req, stream, host.id, headers, extra);
  }

  /**
   * The response is whole: its declared length has arrived (or it can have no body). The client's
   * response ends and the host's slot is released now, so neither waits for a host that keeps
   * the stream open. The host then gets `lengthEndGraceMs` to end the stream; bytes past the
   * declared length meanwhile are the host's error (never forwarded: the client has its
   * response), and a stream still open after the grace is cancelled, which cancels the
   * handler's body in the tab.
   */
  #completeByLength(stream: Stream, host: HostConnection, bodyless: boolean): void {
    this.#pool.reportSuccess(host, this.#app);
    this.#sink?.end();
    this.#sink = null;
    this.#finish();
    this.#res.end();
    this.#events.timing?.ended(this.#res);
    if (stream.closed) return;
    const timer = setTimeout(() => {
      stream.reset('PROTO_CANCELLED', 'the response is complete at its content-length; the stream was not ended');
    }, this.#opts.lengthEndGraceMs);
    timer.unref?.();
    stream.onreset = () => clearTimeout(timer);
    stream.ondata = (chunk) => {
      clearTimeout(timer);
      if (bodyless) return void stream.reset('PROTO_CANCELLED', 'this response has no body');
      stream.reset('INGRESS_BAD_RESPONSE', 'body longer than content-length');
      this.#events.log('warn', 'response body longer than its content-length (not forwarded)', { host: host.name, url: this.#req.url, extra: chunk.byteLength });
      this.#blame(host, 'body longer than its content-length');
    };
    stream.onend = () => {
      clearTimeout(timer);
      // Answered in full before the request body was done: the host needs no more of it.
      if (!stream.closed) stream.reset('PROTO_CANCELLED', 'the response is complete; the rest of the request body is not needed');
    };
  }

  #onReset(err: StreamError): void {
    if (this.#finished) return;
    const host = this.#host!;
    clearTimeout(this.#headTimer);
    this.#release();
    if (this.#res.headersSent) {
      this.#events.log('warn', 'response cut after its head', { host: host.name, app: this.#app, code: err.code, message: err.message });
      // The app failed mid-body (threw, lied about its length): the host did its job by saying so.
      if (APP_FAILURE_CODES.has(err.code) && isErrorCode(err.code)) {
        this.#blameApp(host, err.code);
        return this.#fail(err.code, err.message || err.code);
      }
      if (!HOST_GONE.has(err.code)) this.#blame(host, err.code);
      return this.#fail('INGRESS_HOST_LOST', err.message);
    }
    if (HOST_GONE.has(err.code)) return this.#retryOrFail('INGRESS_HOST_LOST', `the host went away: ${err.message}`, host);
    if (HOST_REFUSALS.has(err.code) && isErrorCode(err.code)) {
      return this.#retryOrFail(err.code === 'PROTO_TOO_MANY_STREAMS' ? 'INGRESS_HOSTS_BUSY' : err.code, err.message, host);
    }
    if (APP_FAILURE_CODES.has(err.code) && isErrorCode(err.code)) {
      this.#blameApp(host, err.code);
      return this.#fail(err.code, err.message || err.code);
    }
    // A protocol violation, or a code the host has no business sending.
    this.#blame(host, err.code);
    this.#fail('INGRESS_BAD_RESPONSE', `the host broke protocol: ${err.code} ${err.message}`.trim());
  }

  #retryOrFail(code: ErrorCode, message: string, host: HostConnection): void {
    const method = this.#req.method;
    const idempotent = method === 'GET' || method === 'HEAD';
    if (this.#opts.retryIdempotent && idempotent && !this.#hasBody && this.#tried.size < this.#opts.idempotentAttempts && !this.#finished) {
      this.#events.log('info', 'retrying on another host', { host: host.name, code, url: this.#req.url });
      this.#stream = null;
      this.#host = null;
      return this.#attempt();
    }
    this.#fail(code, message);
  }

  /**
   * The app failed on this host: counted against the app. Only a host whose answers for the
   * app fail far more than its peers' is taken out (a forged app code, host-pool.ts).
   */
  #blameApp(host: HostConnection, code: string): void {
    const { penaltyMs, rates } = this.#pool.reportAppFailure(host, this.#app, code);
    if (penaltyMs > 0) {
      const pct = (r: number) => `${Math.round(r * 100)}%`;
      this.#events.log('warn', 'host taken out of rotation: its answers fail far more than its peers\' for this app', {
        host: host.name, app: this.#app, code, ms: penaltyMs, failed: rates ? pct(rates.host) : undefined, peersFailed: rates ? pct(rates.peers) : undefined,
      });
    }
  }

  #blame(host: HostConnection, why: string): void {
    const penalty = this.#pool.reportFailure(host);
    if (penalty > 0) this.#events.log('warn', 'host taken out of rotation', { host: host.name, why, ms: penalty });
  }

  #cancel(code: ErrorCode, message: string): void {
    if (this.#finished) return;
    this.#stream?.reset(code, message);
    this.#finish();
  }

  #fail(code: ErrorCode, message: string, extra?: Record<string, string>): void {
    if (this.#finished) return;
    if (!this.#res.headersSent && this.#exchange?.onError(code)) return this.#finish();
    this.#errorCode = code;
    const host = this.#host;
    const headers: Record<string, string> = { ...extra };
    if (this.#cache) headers['dcdn-cache'] = this.#exchange?.label ?? 'BYPASS';
    if (host) {
      headers['dcdn-host'] = host.name;
      headers['dcdn-transport'] = host.transport;
    }
    if (this.#cluster) headers['dcdn-via'] = this.#cluster.via;
    this.#finish();
    sendError(this.#res, code, message, headers);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    // Still copying a body: the response was cut, so there is nothing whole to store.
    this.#sink?.abort();
    this.#sink = null;
    this.#exchange?.done();
    clearTimeout(this.#headTimer);
    clearTimeout(this.#idleTimer);
    this.#release();
    this.#resolve();
  }

  /** Gives back the in-flight slot of the current attempt, once. */
  #release(): void {
    if (this.#counted) this.#counted.inFlight--;
    this.#counted = null;
  }
}

/**
 * The forwarded headers with the ingress's request id and `traceparent`. A client's own
 * `dcdn-request-id` is dropped (the id is the ingress's to give), and its `tracestate` is kept
 * only when its `traceparent` was valid, as W3C Trace Context asks.
 */
function withTrace(headers: Array<[string, string]>, trace: RequestTrace): Array<[string, string]> {
  const out = headers.filter(([name]) => {
    const lower = name.toLowerCase();
    return lower !== REQUEST_ID_HEADER && lower !== 'traceparent' && (trace.inherited || lower !== 'tracestate');
  });
  out.push([REQUEST_ID_HEADER, trace.requestId], ['traceparent', trace.traceparent]);
  return out;
}
