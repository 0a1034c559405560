import type { IncomingMessage, ServerResponse } from 'node:http';
import { APP_FAILURE_CODES, isErrorCode, type ErrorCode, type Stream, type StreamError } from '../protocol/index.ts';
import { sendError } from './error-response.ts';
import type { AppRouter } from './app-router.ts';
import { mayServe, VOLUNTEER_WITHHELD_HEADERS } from './host-traits.ts';
import type { HostConnection, HostPool } from './host-pool.ts';
import { checkResponseHead, declaredLength, forwardRequestHeaders, forwardResponseHeaders, type ForwardingPolicy } from './http-headers.ts';

/** Named limits and timeouts of the forwarding path; see docs/ingress.md. */
export interface ProxyOptions {
  /** Time from the end of the request body to the response head. Default 30000 ms. */
  headTimeoutMs: number;
  /** Longest pause in a request or response body. Default 60000 ms. */
  idleTimeoutMs: number;
  /** Largest request body. Default 100 MiB. */
  maxBodyBytes: number;
  /** Longest request target (path and query). Default 8192. */
  maxUrlLength: number;
  /** Largest total of request header names and values. Default 16384. */
  maxHeaderBytes: number;
  /** Retry GET and HEAD once on another host when the first fails before the head. Default true. */
  retryIdempotent: boolean;
  forwarding: ForwardingPolicy;
  router: AppRouter;
}

export const PROXY_DEFAULTS: Omit<ProxyOptions, 'forwarding' | 'router'> = {
  headTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxBodyBytes: 100 * 1024 * 1024,
  maxUrlLength: 8192,
  maxHeaderBytes: 16 * 1024,
  retryIdempotent: true,
};

/** Codes a host may send that mean "not served here; another host may do it". */
const HOST_REFUSALS = new Set(['PROTO_TOO_MANY_STREAMS', 'HOST_OVERLOADED', 'HOST_NO_APP', 'HOST_SANDBOX_RECYCLED', 'HOST_SANDBOX_CLOSED']);
/** Codes that mean the session to the host died under the stream. */
const HOST_GONE = new Set(['PROTO_SESSION_CLOSED', 'PROTO_HEARTBEAT_TIMEOUT']);

export interface ProxyEvents {
  log(level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Forwards one HTTP request to a host and streams the answer back.
 *
 * Status mapping (the only place it happens, via `sendError`):
 * 400/413/414/431 are decided before any host is contacted; 503 when no host can take it;
 * 504 when the head does not come in time; 502 when the host answers badly or goes away before
 * the head. After the head the status can't change, so a failure cuts the connection.
 */
export class ProxyRequest {
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #pool: HostPool;
  readonly #opts: ProxyOptions;
  readonly #events: ProxyEvents;
  readonly #tried = new Set<string>();
  #url = '';
  #app = '';
  #headers: Array<[string, string]> = [];
  #hasBody = false;
  #host: HostConnection | null = null;
  #stream: Stream | null = null;
  #headTimer: ReturnType<typeof setTimeout> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** The host whose in-flight count this request holds, if any. */
  #counted: HostConnection | null = null;
  #lastHost: string | undefined;
  #errorCode: ErrorCode | undefined;
  #bodyStarted = false;
  #finished = false;
  #resolve!: () => void;
  readonly done: Promise<void>;

  constructor(req: IncomingMessage, res: ServerResponse, pool: HostPool, opts: ProxyOptions, events: ProxyEvents) {
    this.#req = req;
    this.#res = res;
    this.#pool = pool;
    this.#opts = opts;
    this.#events = events;
    this.done = new Promise((r) => (this.#resolve = r));
  }

  /** Name of the host that answered (or was last tried), for the access log. */
  get hostName(): string | undefined {
    return this.#lastHost;
  }

  /** The error code this request was answered (or cut) with, if any. */
  get errorCode(): ErrorCode | undefined {
    return this.#errorCode;
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
    this.#attempt();
    return this.done;
  }

  #validate(): [ErrorCode, string] | null {
    const req = this.#req;
    const target = req.url ?? '';
    if (target.length > this.#opts.maxUrlLength) return ['INGRESS_URL_TOO_LONG', `the URL is longer than ${this.#opts.maxUrlLength} bytes`];
    if (!target.startsWith('/')) return ['INGRESS_BAD_REQUEST', 'only origin-form request targets (/path) are served'];
    let headerBytes = 0;
    for (const h of req.rawHeaders) headerBytes += h.length;
    if (headerBytes > this.#opts.maxHeaderBytes) return ['INGRESS_HEADERS_TOO_LARGE', `headers exceed ${this.#opts.maxHeaderBytes} bytes`];
    const te = req.headers['transfer-encoding'];
    // RFC 9112 §6.1: a request whose transfer coding is not exactly chunked can't be framed
    // reliably; passing it on is how smuggling starts.
    if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return ['INGRESS_BAD_REQUEST', `unsupported transfer-encoding ${JSON.stringify(te.slice(0, 40))}`];
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > this.#opts.maxBodyBytes) {
      return ['INGRESS_BODY_TOO_LARGE', `the body is larger than ${this.#opts.maxBodyBytes} bytes`];
    }
    const route = this.#opts.router.route(req.headers.host, target);
    if ('unknown' in route) return ['INGRESS_UNKNOWN_APP', `no app named ${JSON.stringify(route.unknown)} is deployed`];
    this.#app = route.app;
    this.#headers = forwardRequestHeaders(req.rawHeaders, req.socket.remoteAddress ?? '', this.#opts.forwarding);
    if (route.prefix) this.#headers.push(['x-forwarded-prefix', route.prefix]);
    const host = req.headers.host ?? 'localhost';
    try {
      this.#url = new URL(route.target, `${this.#opts.forwarding.protocol}://${host}`).href;
    } catch {
      return ['INGRESS_BAD_REQUEST', 'the Host header or URL is malformed'];
    }
    this.#hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
    return null;
  }

  #attempt(): void {
    const app = this.#opts.router.ref(this.#app);
    const picked = this.#pool.pick(this.#tried, Date.now(), (h) => mayServe(h.traits, app));
    if ('error' in picked) {
      const error = this.#tried.size > 0 && picked.error === 'INGRESS_NO_HOST' ? 'INGRESS_HOST_LOST' : picked.error;
      const needs = app ? [app.config.require.length ? `hosts with ${app.config.require.join(', ')}` : '', app.config.volunteers ? '' : "the operator's own hosts (not volunteers)"].filter(Boolean) : [];
      const why = error === 'INGRESS_HOST_LOST' ? 'the host went away and no other host could take the request' : error === 'INGRESS_NO_HOST' && needs.length && this.#pool.size > 0 ? `no connected host may serve ${this.#app}: it needs ${needs.join(' and ')}` : 'no host can take this request now';
      return this.#fail(error, why);
    }
    const host = picked.host;
    this.#tried.add(host.id);
    this.#lastHost = host.name;
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
    host.inFlight++;
    this.#counted = host;
    stream.onhead = (head) => this.#onHead(head.status, head.headers);
    stream.onreset = (err) => this.#onReset(err);
    if (this.#hasBody) void this.#pumpBody(stream);
    else this.#armHeadTimer();
  }

  async #pumpBody(stream: Stream): Promise<void> {
    const req = this.#req;
    if (this.#bodyStarted) return; // a body can be sent once: requests with one are never retried
    this.#bodyStarted = true;
    let total = 0;
    try {
      this.#armIdle('request');
      for await (const chunk of req as AsyncIterable<Buffer>) {
        total += chunk.byteLength;
        if (total > this.#opts.maxBodyBytes) {
          stream.reset('INGRESS_BODY_TOO_LARGE', 'request body over the limit');
          return this.#fail('INGRESS_BODY_TOO_LARGE', `the body is larger than ${this.#opts.maxBodyBytes} bytes`, { connection: 'close' });
        }
        this.#armIdle('request');
        await stream.write(chunk);
      }
      if (this.#finished || stream.closed) return;
      stream.end();
      this.#armIdle(null);
      if (!stream.headSent || !this.#res.headersSent) this.#armHeadTimer();
    } catch {
      // The stream failed (its reset handler answers the client) or the client aborted.
      this.#armIdle(null);
    }
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

  /** One idle timer, for whichever body is moving: the client's upload or the host's response. */
  #armIdle(which: 'request' | 'response' | null): void {
    clearTimeout(this.#idleTimer);
    if (!which || this.#finished) return;
    this.#idleTimer = setTimeout(() => {
      this.#stream?.reset(which === 'request' ? 'INGRESS_REQUEST_TIMEOUT' : 'INGRESS_IDLE_TIMEOUT', 'body stalled');
      if (which === 'request') this.#fail('INGRESS_REQUEST_TIMEOUT', `the request body stalled for ${this.#opts.idleTimeoutMs} ms`, { connection: 'close' });
      else this.#fail('INGRESS_IDLE_TIMEOUT', `the response body stalled for ${this.#opts.idleTimeoutMs} ms`);
    }, this.#opts.idleTimeoutMs);
  }

  #onHead(status: number, headers: Array<[string, string]>): void {
    const stream = this.#stream!;
    const host = this.#host!;
    clearTimeout(this.#headTimer);
    const problem = checkResponseHead(status, headers);
    if (problem) {
      stream.reset('INGRESS_BAD_RESPONSE', problem);
      this.#blame(host, problem);
      return this.#fail('INGRESS_BAD_RESPONSE', `the host's response head was invalid: ${problem}`);
    }
    const res = this.#res;
    const expected = declaredLength(headers);
    const extra: Array<[string, string]> = [['dcdn-host', host.name], ['dcdn-transport', host.transport]];
    try {
      res.writeHead(status, forwardResponseHeaders(headers, extra));
    } catch (err) {
      stream.reset('INGRESS_BAD_RESPONSE', 'unsendable head');
      this.#blame(host, (err as Error).message);
      return this.#fail('INGRESS_BAD_RESPONSE', `the host's response head could not be sent: ${(err as Error).message}`);
    }
    if (this.#req.method === 'HEAD') res.flushHeaders();
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
      if (this.#req.method === 'HEAD') return stream.consume(chunk.byteLength);
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
    };
    stream.onend = () => {
      if (expected !== undefined && received !== expected && this.#req.method !== 'HEAD' && status !== 304) {
        this.#blame(host, `body of ${received} bytes, content-length ${expected}`);
        return this.#fail('INGRESS_BAD_RESPONSE', 'body shorter than content-length');
      }
      this.#pool.reportSuccess(host);
      this.#finish();
      res.end();
    };
  }

  #onReset(err: StreamError): void {
    if (this.#finished) return;
    const host = this.#host!;
    clearTimeout(this.#headTimer);
    this.#release();
    if (this.#res.headersSent) {
      this.#events.log('warn', 'response cut after its head', { host: host.name, code: err.code, message: err.message });
      if (!HOST_GONE.has(err.code)) this.#blame(host, err.code);
      return this.#fail('INGRESS_HOST_LOST', err.message);
    }
    if (HOST_GONE.has(err.code)) return this.#retryOrFail('INGRESS_HOST_LOST', `the host went away: ${err.message}`, host);
    if (HOST_REFUSALS.has(err.code) && isErrorCode(err.code)) {
      return this.#retryOrFail(err.code === 'PROTO_TOO_MANY_STREAMS' ? 'INGRESS_HOSTS_BUSY' : err.code, err.message, host);
    }
    if (APP_FAILURE_CODES.has(err.code) && isErrorCode(err.code)) return this.#fail(err.code, err.message || err.code);
    // A protocol violation, or a code the host has no business sending.
    this.#blame(host, err.code);
    this.#fail('INGRESS_BAD_RESPONSE', `the host broke protocol: ${err.code} ${err.message}`.trim());
  }

  #retryOrFail(code: ErrorCode, message: string, host: HostConnection): void {
    const method = this.#req.method;
    const idempotent = method === 'GET' || method === 'HEAD';
    if (this.#opts.retryIdempotent && idempotent && !this.#hasBody && this.#tried.size < 2 && !this.#finished) {
      this.#events.log('info', 'retrying on another host', { host: host.name, code, url: this.#req.url });
      this.#stream = null;
      this.#host = null;
      return this.#attempt();
    }
    this.#fail(code, message);
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
    this.#errorCode = code;
    const host = this.#host;
    const headers: Record<string, string> = { ...extra };
    if (host) {
      headers['dcdn-host'] = host.name;
      headers['dcdn-transport'] = host.transport;
    }
    this.#finish();
    sendError(this.#res, code, message, headers);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
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
