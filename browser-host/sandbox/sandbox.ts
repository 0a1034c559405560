/**
 * Per-app sandboxes in the host tab: each app runs in a dedicated module worker inside its own
 * opaque-origin iframe (frame.ts), and talks to the page only over one MessagePort.
 *
 * Limits. A JavaScript loop cannot be interrupted from outside, only ended with its worker, so:
 * - a request without a response head after `wallMs` fails with HOST_HANDLER_TIMEOUT and is
 *   cancelled; if the worker then does not answer a ping, or the handler is still running
 *   `wallMs` later, the worker is recycled (frame removed, a fresh one started) and its other
 *   requests fail with HOST_SANDBOX_RECYCLED;
 * - a heartbeat pings the worker and its frame every `tick`; a worker silent for longer than
 *   `cpuMs` is recycled (HOST_HANDLER_CPU_LIMIT for each request in it: which one looped cannot
 *   be told), and a frame that stops answering means its process died (out of memory, killed):
 *   HOST_SANDBOX_CRASHED.
 * Other apps are other workers in other frames (other processes, with the right launcher flag)
 * and are not touched.
 */
import RUNTIME from 'dcdn:sandbox-runtime';
import { SandboxError } from './errors.ts';
import { ResponseBodyGuard, type BodyEnd } from './response-body.ts';
import { SandboxWorker, type RequestReply } from './sandbox-worker.ts';
import type { KvCallMessage, LogMessage } from './messages.ts';
import { CACHE_PATH_PREFIX } from '../../protocol/index.ts';
import { kvErrorAnswer, type KvAnswer } from '../kv/namespace.ts';
import type { KvRouter } from '../app-runtime.ts';
import { LogBudget, type Session } from '../../protocol/index.ts';
import { isHeaderListCanonical, responseHeaderList } from '../web-compat.ts';

export interface SandboxLimits {
  /** Longest time from `fetch()` to the response head. Default 30 000 ms. */
  wallMs: number;
  /**
   * Longest time the worker may run JavaScript without returning to its event loop (measured
   * with pings, to within a heartbeat tick). Default: `wallMs` plus two ticks.
   */
  cpuMs?: number;
  /** Requests beyond this many in flight fail at once with HOST_OVERLOADED. Default no limit. */
  maxInFlight?: number;
  /** Longest time a fresh worker may take to load the module. Default 10 000 ms. */
  startMs?: number;
}

export interface SandboxOptions {
  appName: string;
  version: number;
  /** The app's bundled ES module (`export default { fetch }`). */
  code: string;
  /** The handler's `env`; must be structured-cloneable. */
  env?: Record<string, unknown>;
  limits?: Partial<SandboxLimits>;
  /** Receives one line per notable event (recycles, tampering, uncaught app errors). */
  log?: (line: string) => void;
  /** Where the iframes go; default `document.body`. */
  container?: Node;
  /**
   * The app's KV bindings and where their calls go (to the ingress, with this app's name
   * stamped on by the host page: a worker cannot choose the app). Default none.
   */
  kv?: { bindings: string[]; transport: KvRouter; /** SQL bindings, whose calls take the same transport. */ sql?: string[] };
}

export interface SandboxStats {
  /** Requests accepted by `fetch()`, over the sandbox's life. */
  requests: number;
  /** Requests whose response (or its `waitUntil` work) is not finished yet. */
  inFlight: number;
  /** Requests that failed (caller aborts excluded). */
  errors: number;
  /** Times the worker was thrown away and started afresh. */
  recycled: number;
}

export interface SandboxFetchOptions {
  /** Aborting fails a pending head with the signal's reason and errors a streaming body. */
  signal?: AbortSignal;
  /** The session the request came on; its handler's KV calls go back over it. */
  session?: Session;
}

/**
 * A request as plain data, for {@link Sandbox.fetchRaw}: the worker builds the app's `Request`
 * itself, so the page need not build one too.
 */
export interface SandboxRequest {
  method: string;
  url: string;
  /** In order, repeated names kept (the wire's header list). */
  headers: Array<[string, string]>;
  /** Transferred to the worker; null for GET and HEAD and for requests without a body. */
  body: ReadableStream<Uint8Array> | null;
  /** The ingress times this request: the reply carries {@link SandboxReply.timing}. */
  timed?: boolean;
}

/** A timed request's stamps from the sandbox, in ms as `performance.timeOrigin + performance.now()`. */
export interface SandboxTiming {
  /** The app's fetch() was called (in the worker; the worker's word, see messages.ts). */
  handlerStart: number;
  /** The app's fetch() resolved (in the worker). */
  handlerHead: number;
  /** The head reached the page. */
  headInPage: number;
}

/** A response head as plain data, and its body in the cheapest form it came in. */
export interface SandboxReply {
  status: number;
  /**
   * As `responseHeaderList()` (web-compat.ts) lists a `Response`'s headers: lowercase names in
   * order, values combined, each Set-Cookie separate and last.
   */
  headers: Array<[string, string]>;
  /**
   * null: no body. Bytes: the whole body (the app made it from a string or bytes); report with
   * {@link bodyDone} once written. A stream: read it to the end or cancel it, as a `Response` body.
   */
  body: Uint8Array | ReadableStream<Uint8Array> | null;
  /**
   * For a bytes body: it was written out (`true`) or dropped (`false`). Throws what failed the
   * body meanwhile (the sandbox was recycled or closed, the call aborted), as reading a stream
   * body would. Later calls do nothing.
   */
  bodyDone(written: boolean): void;
  /** Status 101: the port of the handler's accepted WebSocket (messages.ts `WsToHost`/`WsFromHost`). */
  webSocket?: MessagePort;
  /** With `webSocket`: resolves, with why, when the worker holding its server end is stopped. */
  workerGone?: Promise<string>;
  /** For a timed request (`SandboxRequest.timed`), when the worker said when; else absent. */
  timing?: SandboxTiming;
}

/** One request in flight through {@link Sandbox.fetchRaw}. */
export interface SandboxCall {
  /** The head, or the failure a `fetch()` would reject with. */
  readonly reply: Promise<SandboxReply>;
  /** As aborting a `fetch()`'s signal: fails a pending head with `reason`, errors a body, tells the worker. */
  abort(reason: unknown): void;
}

interface Entry {
  readonly id: number;
  readonly session: Session | null;
  /** The ingress's id of the request (its `dcdn-request-id`); '' when it came without one. */
  requestId: string;
  /** What the request may still log (LOG_LIMITS); made on its first line. */
  logBudget: LogBudget | null;
  /** Whether the caller takes a {@link SandboxReply} (fetchRaw) rather than a `Response` (fetch). */
  readonly raw: boolean;
  /** When the head is due (`performance.now()`): the wall-time limit. */
  readonly deadline: number;
  /** Set once the request was posted; only replies from this worker's port may touch it. */
  worker: SandboxWorker | null;
  /** 'head' until the promise settles, 'body' while a response body streams, then 'over'. */
  phase: 'head' | 'body' | 'over';
  /** The worker is done with it (`ctx.waitUntil` included), or will never say so. */
  settled: boolean;
  /** Failed at its wall-time limit; the worker was told to cancel it. */
  timedOut: boolean;
  resolve(value: SandboxReply | Response): void;
  reject(error: unknown): void;
  body: ResponseBodyGuard | BytesBody | null;
  settleTimer: ReturnType<typeof setTimeout> | undefined;
  unlisten(): void;
}

/** A response body that came whole, as bytes: it only has to be told it failed, or is over. */
class BytesBody {
  over = false;
  failed = false;
  error: unknown = undefined;

  fail(error: unknown): void {
    if (this.over) return;
    this.over = true;
    this.failed = true;
    this.error = error;
  }
}

/** Statuses whose responses cannot have a body (Fetch: null body status; 101 and 103 never reach here). */
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);
const BODY_DONE: BodyEnd = { kind: 'done' };
const BODY_CANCELLED: BodyEnd = { kind: 'cancelled' };

type RecycleCause = 'timeout' | 'blocked' | 'crashed';
/** Malformed messages after which a worker is recycled rather than heard further. */
const MAX_VIOLATIONS = 1000;
const RECYCLE_CODES = { timeout: 'HOST_SANDBOX_RECYCLED', blocked: 'HOST_HANDLER_CPU_LIMIT', crashed: 'HOST_SANDBOX_CRASHED' } as const;

/**
 * Starts a sandbox for one version of an app; resolves once its module has loaded.
 *
 * @throws {SandboxError} `HOST_APP_LOAD_FAILED`
 * @example
 * ```ts
 * const sandbox = await createSandbox({ appName: 'hello', version: 3, code, env: { FOO: 'bar' }, limits: { wallMs: 30_000 } });
 * const response = await sandbox.fetch(request, { signal });
 * await sandbox.drain(); // version 4 takes new requests meanwhile
 * await sandbox.close();
 * ```
 */
export async function createSandbox(options: SandboxOptions): Promise<Sandbox> {
  const sandbox = new Sandbox(options);
  await sandbox.start();
  return sandbox;
}

/** One app version's sandbox; an `AppRuntime` (app-runtime.ts) for the registry. */
export class Sandbox {
  readonly appName: string;
  readonly version: number;
  readonly stats: SandboxStats = { requests: 0, inFlight: 0, errors: 0, recycled: 0 };
  readonly #options: SandboxOptions;
  readonly #limits: Required<Omit<SandboxLimits, 'maxInFlight'>> & { maxInFlight: number };
  /** Heartbeat period; a quarter of the tightest limit, within [50, 1000] ms. */
  readonly #tickMs: number;
  readonly #log: (line: string) => void;
  #state: 'running' | 'draining' | 'closed' = 'running';
  #worker: SandboxWorker | null = null;
  #starting: Promise<SandboxWorker> | null = null;
  #generation = 0;
  #nextId = 1;
  readonly #pending = new Map<number, Entry>();
  /** Accepted WebSockets of the running worker: told when it is stopped (their ports go silent). */
  readonly #sockets = new Set<(why: string) => void>();
  /**
   * Requests waiting for their head, oldest first. Every request gets the same wall-time limit,
   * so this is also deadline order, and one timer for the oldest serves them all (a timer per
   * request cost more than the rest of the bookkeeping together).
   */
  readonly #awaitingHead = new Set<Entry>();
  #wallTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #probing = false;
  /** Settles when a pending probe has given its verdict. */
  #hold: Promise<void> | null = null;
  /** Malformed messages from the current worker. */
  #violations = 0;
  /** Uncaught errors of the current worker, for the log. */
  #workerErrors = 0;
  #drainWaiters: Array<() => void> = [];

  /** Use {@link createSandbox}. */
  constructor(options: SandboxOptions) {
    this.appName = options.appName;
    this.version = options.version;
    this.#options = options;
    const wallMs = options.limits?.wallMs ?? 30_000;
    this.#tickMs = Math.min(1000, Math.max(50, Math.min(wallMs, options.limits?.cpuMs ?? Infinity) / 4));
    this.#limits = {
      wallMs,
      cpuMs: options.limits?.cpuMs ?? wallMs + 2 * this.#tickMs,
      maxInFlight: options.limits?.maxInFlight ?? Infinity,
      startMs: options.limits?.startMs ?? 10_000,
    };
    this.#log = options.log ?? (() => {});
  }

  /** `appName`, under the name `AppRuntime` uses. */
  get app(): string {
    return this.appName;
  }

  get #label(): string {
    return `${this.appName}@${this.version}`;
  }

  /** Loads the module in a first worker. Called once, by {@link createSandbox}. */
  async start(): Promise<void> {
    await this.#ensureWorker();
  }

  /**
   * Runs `request` through the app's handler. The request body (a stream) and the response body
   * are streamed across, one chunk in flight each way.
   *
   * @throws {SandboxError} with `code` HOST_HANDLER_ERROR, HOST_BAD_HANDLER_RESPONSE,
   *   HOST_HANDLER_TIMEOUT, HOST_HANDLER_CPU_LIMIT, HOST_SANDBOX_RECYCLED, HOST_SANDBOX_CRASHED,
   *   HOST_APP_LOAD_FAILED, HOST_SANDBOX_CLOSED or HOST_OVERLOADED; the same errors a response
   *   body can fail with once the head has been returned.
   */
  fetch(request: Request, options: SandboxFetchOptions = {}): Promise<Response> {
    if (this.#state !== 'running') return Promise.reject(new SandboxError('HOST_SANDBOX_CLOSED', `${this.#label} is ${this.#state}`));
    const signal = options.signal ? AbortSignal.any([request.signal, options.signal]) : request.signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    const refused = this.#admit();
    if (refused) return Promise.reject(refused);
    return new Promise<Response>((resolve, reject) => {
      const entry = this.#enter(options.session ?? null, false, resolve as (value: SandboxReply | Response) => void, reject);
      const onAbort = () => this.#onAbort(entry, signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      entry.unlisten = () => signal.removeEventListener('abort', onAbort);
      const hasBody = request.body !== null && request.method !== 'GET' && request.method !== 'HEAD';
      this.#dispatch(entry, { method: request.method, url: request.url, headers: [...request.headers], body: hasBody ? request.body : null });
    });
  }

  /**
   * As {@link fetch}, with the request and the response head as plain data: the page builds no
   * `Request`, `Headers` or `Response`, and a body that came whole stays bytes. The host page's
   * runner (app-runner.ts) serves the wire this way. Fails with the same errors as `fetch()`.
   */
  fetchRaw(request: SandboxRequest, options: { session?: Session } = {}): SandboxCall {
    const refused = this.#state !== 'running' ? new SandboxError('HOST_SANDBOX_CLOSED', `${this.#label} is ${this.#state}`) : this.#admit();
    if (refused) return { reply: Promise.reject(refused), abort() {} };
    let entry!: Entry;
    const reply = new Promise<SandboxReply>((resolve, reject) => {
      entry = this.#enter(options.session ?? null, true, resolve as (value: SandboxReply | Response) => void, reject);
    });
    this.#dispatch(entry, request);
    return { reply, abort: (reason) => this.#onAbort(entry, reason) };
  }

  /** Counts a request, and refuses it (as an error to fail it with) over `maxInFlight`. */
  #admit(): SandboxError | null {
    this.stats.requests++;
    if (this.#pending.size < this.#limits.maxInFlight) return null;
    this.stats.errors++;
    return new SandboxError('HOST_OVERLOADED', `${this.#label} has ${this.#pending.size} requests in flight`);
  }

  #enter(session: Session | null, raw: boolean, resolve: (value: SandboxReply | Response) => void, reject: (error: unknown) => void): Entry {
    const entry: Entry = {
      id: this.#nextId++,
      session,
      requestId: '',
      logBudget: null,
      raw,
      deadline: performance.now() + this.#limits.wallMs,
      worker: null,
      phase: 'head',
      settled: false,
      timedOut: false,
      resolve,
      reject,
      body: null,
      settleTimer: undefined,
      unlisten: noop,
    };
    this.#pending.set(entry.id, entry);
    this.#awaitingHead.add(entry);
    // Deadlines only grow: a timer already set is due no later than this one.
    if (this.#wallTimer === undefined) this.#armWallTimer();
    this.stats.inFlight = this.#pending.size;
    return entry;
  }

  /** Sets the one wall-time timer for the oldest request waiting for its head, if any. */
  #armWallTimer(): void {
    const first = this.#awaitingHead.values().next().value;
    if (!first) return;
    this.#wallTimer = setTimeout(() => this.#onWallTimer(), Math.max(0, first.deadline - performance.now()));
  }

  #onWallTimer(): void {
    this.#wallTimer = undefined;
    const now = performance.now();
    for (const entry of this.#awaitingHead) {
      if (entry.deadline > now) break;
      this.#awaitingHead.delete(entry);
      this.#onWallTimeout(entry);
    }
    if (this.#wallTimer === undefined) this.#armWallTimer();
  }

  /**
   * Takes no more requests (new ones fail with HOST_SANDBOX_CLOSED) and resolves once those in
   * flight have finished, bodies and `waitUntil` work included (the latter bounded by `wallMs`).
   * The worker keeps running until {@link close}.
   */
  drain(): Promise<void> {
    if (this.#state === 'running') this.#state = 'draining';
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Ends the worker now; requests in flight fail with HOST_SANDBOX_CLOSED. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const error = new SandboxError('HOST_SANDBOX_CLOSED', `${this.#label} was closed`);
    for (const entry of [...this.#pending.values()]) {
      entry.settled = true;
      this.#fail(entry, error);
    }
    clearTimeout(this.#wallTimer);
    this.#stopWorker();
    for (const finish of this.#drainWaiters.splice(0)) finish();
  }

  #dispatch(entry: Entry, request: SandboxRequest): void {
    const worker = this.#hold ? null : this.#worker;
    if (worker) this.#post(entry, worker, request);
    else void this.#dispatchLater(entry, request);
  }

  async #dispatchLater(entry: Entry, request: SandboxRequest): Promise<void> {
    let worker: SandboxWorker;
    try {
      // While the worker is suspected of hanging, new requests wait for the verdict rather than
      // join it in a worker about to be recycled.
      while (this.#hold) await this.#hold;
      worker = await this.#ensureWorker();
    } catch (err) {
      entry.settled = true;
      return this.#fail(entry, err);
    }
    if (entry.phase !== 'head') return; // timed out, aborted or closed while the worker started
    this.#post(entry, worker, request);
  }

  #post(entry: Entry, worker: SandboxWorker, request: SandboxRequest): void {
    entry.worker = worker;
    if (entry.session) entry.requestId = requestIdOf(request.headers);
    const { body } = request;
    try {
      worker.post({ t: 'request', id: entry.id, method: request.method, url: request.url, headers: request.headers, body, ...(request.timed ? { timed: true as const } : {}) }, body ? [body] : []);
    } catch (err) {
      // A locked or used request body cannot be transferred: the caller's mistake, not the app's.
      entry.settled = true;
      this.#fail(entry, err, false);
    }
  }

  #ensureWorker(): Promise<SandboxWorker> {
    if (this.#worker) return Promise.resolve(this.#worker);
    this.#starting ??= this.#spawn().finally(() => (this.#starting = null));
    return this.#starting;
  }

  async #spawn(): Promise<SandboxWorker> {
    const generation = ++this.#generation;
    const name = `${this.#label}#${generation}`;
    const worker = await SandboxWorker.start({
      runtime: RUNTIME,
      init: { t: 'init', appName: this.appName, version: this.version, code: this.#options.code, env: this.#options.env ?? {}, kv: this.#options.kv?.bindings ?? [], sql: this.#options.kv?.sql ?? [] },
      name,
      startMs: this.#limits.startMs,
      ...(this.#options.container ? { container: this.#options.container } : {}),
      onreply: (w, message) => this.#onReply(w, message),
      onkv: (w, message) => this.#onKv(w, message),
      onlog: (w, message) => this.#onLog(w, message),
      onviolation: (w, reason) => this.#onViolation(w, name, reason),
      onworkererror: (w, message) => {
        // The app's own bugs, logged; a flood of them must not flood the page's log.
        if (w === this.#worker && ++this.#workerErrors <= 10) this.#log(`${name} uncaught error: ${message}${this.#workerErrors === 10 ? ' (further ones not logged)' : ''}`);
      },
    }).catch((err: unknown) => {
      this.#log(`${name} failed to start: ${(err as Error).message}`);
      throw err;
    });
    if (this.#state === 'closed') {
      worker.dispose();
      throw new SandboxError('HOST_SANDBOX_CLOSED', `${this.#label} was closed`);
    }
    this.#worker = worker;
    this.#heartbeat = setInterval(() => this.#beat(), this.#tickMs);
    return worker;
  }

  /**
   * A message the runtime would never send: the app is tampering with its port. It can only
   * garble its own requests, so it is ignored; but a flood costs the page's main thread, so a
   * worker that keeps at it is recycled.
   */
  #onViolation(worker: SandboxWorker, name: string, reason: string): void {
    if (worker !== this.#worker) return;
    this.#violations++;
    if (this.#violations <= 3) this.#log(`${name} sent a bad message (${reason}); ignored`);
    if (this.#violations >= MAX_VIOLATIONS) this.#recycle(worker, 'timeout', `its worker sent ${this.#violations} malformed messages`);
  }

  /** Carries a KV call of the worker's to the ingress and posts the answer back to that worker. */
  #onKv(worker: SandboxWorker, call: KvCallMessage): void {
    if (worker !== this.#worker) return;
    const reply = (answer: KvAnswer) => {
      if (worker !== this.#worker) {
        if (answer.body instanceof ReadableStream) void answer.body.cancel().catch(() => {});
        return;
      }
      const { body } = answer;
      worker.post({ t: 'kv-answer', id: call.id, status: answer.status, headers: answer.headers, body }, body instanceof ReadableStream ? [body] : []);
    };
    const kv = this.#options.kv;
    const isSql = call.path.startsWith('/sql/');
    const binding = call.path.slice(isSql ? 5 : 4).split(/[/?]/)[0] ?? '';
    // Cache API calls (`/cache/…`) need no binding: every app has `caches`.
    const isCache = call.path.startsWith(CACHE_PATH_PREFIX);
    if (isSql && (!kv || !(kv.sql ?? []).includes(binding))) return reply(kvErrorAnswer('SQL_UNKNOWN_BINDING', 404, `D1_ERROR: ${this.appName} has no SQL binding ${JSON.stringify(binding.slice(0, 64))}`));
    if (!kv || (!isSql && !isCache && !kv.bindings.includes(binding))) return reply(kvErrorAnswer('KV_UNKNOWN_BINDING', 404, `${this.appName} has no KV binding ${JSON.stringify(binding.slice(0, 64))}`));
    const body = call.body instanceof ReadableStream ? bytesOnly(call.body) : call.body;
    const from = this.#pending.get(call.via);
    const via = from?.worker === worker ? from.session : null;
    kv.transport({ method: call.method, path: call.path, headers: call.headers, body }, via).then(reply, (err: unknown) =>
      reply(kvErrorAnswer((err as { code?: string }).code ?? 'KV_STORE_UNAVAILABLE', 503, (err as Error).message ?? String(err))),
    );
  }

  /**
   * Sends a line of the app's console to the ingress the request came from, under the request's
   * id, within the request's budget (the worker's own cut is not trusted: it shares a global
   * with the app). Lines for requests without a session or id (`fetch()` from the page) go
   * nowhere.
   */
  #onLog(worker: SandboxWorker, message: LogMessage): void {
    const entry = this.#pending.get(message.id);
    if (!entry || entry.worker !== worker || !entry.session || !entry.requestId) return;
    const budget = (entry.logBudget ??= new LogBudget());
    if (message.level === 'cut') return budget.addCut(message.cutLines, message.cutBytes);
    const text = budget.take(message.text);
    if (text !== null) entry.session.sendLog(entry.requestId, message.level, text);
  }

  #stopWorker(): void {
    for (const gone of [...this.#sockets]) gone(`${this.#label}'s worker was stopped`);
    this.#sockets.clear();
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#probing = false;
    this.#worker?.dispose();
    this.#worker = null;
    this.#violations = 0;
    this.#workerErrors = 0;
  }

  #onReply(worker: SandboxWorker, message: RequestReply): void {
    const entry = this.#pending.get(message.id);
    // Ids are per sandbox and looked up only for the worker they were sent to: a message naming
    // any other request (another life of this app; other apps have other tables) is ignored.
    if (!entry || entry.worker !== worker) {
      if (message.t === 'head' && message.body instanceof ReadableStream) void message.body.cancel().catch(() => {});
      if (message.t === 'head') message.ws?.close();
      return;
    }
    if (message.t === 'settled') {
      entry.settled = true;
      return this.#maybeDone(entry);
    }
    // A head or failure that says the worker is done with the request stands for both messages.
    if (message.settled) entry.settled = true;
    if (entry.phase !== 'head') {
      if (message.t === 'head' && message.body instanceof ReadableStream) void message.body.cancel().catch(() => {});
      if (message.t === 'head') message.ws?.close();
      if (message.settled) this.#maybeDone(entry);
      return;
    }
    if (message.t === 'fail') return this.#fail(entry, new SandboxError(message.code, message.message));
    const timing = message.timing ? { handlerStart: message.timing[0], handlerHead: message.timing[1], headInPage: performance.timeOrigin + performance.now() } : undefined;
    this.#respond(entry, message.status, message.headers, message.body, timing, message.ws);
  }

  #respond(entry: Entry, status: number, headerList: Array<[string, string]>, body: ReadableStream<unknown> | Uint8Array | null, timing?: SandboxTiming, ws?: MessagePort): void {
    let source: ReadableStream<unknown> | null = null;
    let value: SandboxReply | Response;
    try {
      if (entry.raw) {
        // What a Response made from these would list: a worker's list already is, unless forged.
        const headers = isHeaderListCanonical(headerList) ? headerList : responseHeaderList(unguardedHeaders(headerList));
        // The browser's own error for a body where none may be, as constructing the Response gives.
        if (body !== null && NULL_BODY_STATUSES.has(status)) void new Response(new Uint8Array(0), { status });
        let bytes: Uint8Array | null = null;
        if (body instanceof Uint8Array) {
          bytes = body;
          entry.body = new BytesBody();
        } else if (body) {
          source = body;
          entry.body = new ResponseBodyGuard(body, (end) => this.#onBodyEnd(entry, end));
        }
        const guarded = entry.body;
        value = {
          status,
          headers,
          body: bytes ?? (guarded instanceof ResponseBodyGuard ? guarded.stream : null),
          bodyDone: (written) => {
            if (!(guarded instanceof BytesBody)) return;
            if (guarded.failed && written) throw guarded.error;
            if (guarded.over) return;
            guarded.over = true;
            this.#onBodyEnd(entry, written ? BODY_DONE : BODY_CANCELLED);
          },
          ...(ws ? { webSocket: ws, workerGone: this.#watchSocket(entry) } : {}),
          ...(timing ? { timing } : {}),
        };
      } else {
        // A page's `fetch()` cannot take a socket: only the wire (fetchRaw) carries WebSockets.
        if (ws) {
          ws.close();
          throw new RangeError('a WebSocket response can only be served over the wire');
        }
        // Bytes sent whole go through the same guard (and body-end accounting) as a stream would.
        source = body instanceof Uint8Array ? bytesStream(body) : body;
        // An unguarded Headers keeps Set-Cookie, as web-compat.ts does for requests.
        const headers = unguardedHeaders(headerList);
        entry.body = source ? new ResponseBodyGuard(source, (end) => this.#onBodyEnd(entry, end)) : null;
        const response = new Response(entry.body?.stream ?? null, { status, headers });
        Object.defineProperty(response, 'headers', { value: headers, enumerable: true });
        value = response;
      }
    } catch (err) {
      if (entry.body) entry.body.fail(err);
      else void source?.cancel().catch(() => {});
      entry.body = null;
      entry.worker?.post({ t: 'cancel', id: entry.id, reason: 'invalid response head' });
      return this.#fail(entry, new SandboxError('HOST_BAD_HANDLER_RESPONSE', `invalid response head: ${(err as Error).message}`));
    }
    this.#awaitingHead.delete(entry);
    entry.phase = entry.body ? 'body' : 'over';
    entry.resolve(value);
    this.#maybeDone(entry);
  }

  /** Resolves, with why, when the worker that accepted a WebSocket is stopped (recycled or closed). */
  #watchSocket(entry: Entry): Promise<string> {
    return new Promise<string>((resolve) => {
      if (!entry.worker || entry.worker !== this.#worker) return resolve(`${this.#label}'s worker is gone`);
      const gone = (why: string) => {
        this.#sockets.delete(gone);
        resolve(why);
      };
      this.#sockets.add(gone);
    });
  }

  #onBodyEnd(entry: Entry, end: BodyEnd): void {
    if (entry.phase !== 'body') return;
    entry.phase = 'over';
    if (end.kind === 'error') this.stats.errors++;
    if (end.kind !== 'done') entry.worker?.post({ t: 'cancel', id: entry.id, reason: end.kind === 'error' ? end.error.message : 'response body cancelled' });
    this.#maybeDone(entry);
  }

  #onAbort(entry: Entry, reason: unknown): void {
    if (entry.phase === 'over') return;
    entry.worker?.post({ t: 'cancel', id: entry.id, reason: String((reason as Error | undefined)?.message ?? reason) });
    this.#fail(entry, reason, false);
  }

  #onWallTimeout(entry: Entry): void {
    if (entry.phase !== 'head') return;
    const worker = entry.worker;
    entry.timedOut = true;
    worker?.post({ t: 'cancel', id: entry.id, reason: 'wall-time limit' });
    this.#fail(entry, new SandboxError('HOST_HANDLER_TIMEOUT', `${this.#label} sent no response head within ${this.#limits.wallMs} ms`));
    // A handler awaiting something slow is cancelled and that is all; one stuck in a loop holds
    // the worker, which only ending it can free.
    if (worker && worker === this.#worker) {
      const why = `a request got no response head within ${this.#limits.wallMs} ms and the worker does not answer`;
      this.#probe(worker, (alive) => alive.worker || this.#recycle(worker, alive.frame ? 'timeout' : 'crashed', why));
    }
  }

  /** Pings and reports, a grace period later, who answered; new requests wait meanwhile. */
  #probe(worker: SandboxWorker, then: (alive: { worker: boolean; frame: boolean }) => void): void {
    const asked = performance.now();
    worker.ping();
    const verdict = new Promise<void>((resolve) => {
      // The grace also lets pongs queued behind a stalled page be read before judging.
      setTimeout(() => {
        if (worker === this.#worker) then({ worker: worker.lastWorkerPong >= asked, frame: worker.lastFramePong >= asked });
        resolve();
      }, Math.max(250, this.#tickMs));
    });
    this.#hold = verdict;
    void verdict.then(() => {
      if (this.#hold === verdict) this.#hold = null;
    });
  }

  #beat(): void {
    const worker = this.#worker;
    if (!worker) return;
    const now = performance.now();
    const frameSilent = now - worker.lastFramePong;
    const workerSilent = now - worker.lastWorkerPong;
    const suspect = frameSilent > Math.max(2 * this.#tickMs, 1000) || workerSilent > this.#limits.cpuMs;
    if (!suspect || this.#probing) return worker.ping();
    // Timers of a busy or hidden page fire late, ahead of pongs already queued: confirm first.
    this.#probing = true;
    this.#probe(worker, (alive) => {
      this.#probing = false;
      if (alive.worker) return;
      if (!alive.frame) return this.#recycle(worker, 'crashed', `the sandbox process stopped answering (silent ${Math.round(performance.now() - worker.lastFramePong)} ms)`);
      const blocked = performance.now() - worker.lastWorkerPong;
      if (blocked > this.#limits.cpuMs) this.#recycle(worker, 'blocked', `the worker ran ${Math.round(blocked)} ms without yielding (limit ${this.#limits.cpuMs} ms)`);
    });
  }

  #recycle(worker: SandboxWorker, cause: RecycleCause, why: string): void {
    if (worker !== this.#worker) return;
    this.stats.recycled++;
    this.#log(`recycling ${this.#label}: ${why}`);
    this.#stopWorker();
    const code = RECYCLE_CODES[cause];
    for (const entry of [...this.#pending.values()]) {
      if (entry.worker !== worker) continue;
      entry.settled = true;
      if (entry.phase === 'over') this.#remove(entry);
      else this.#fail(entry, new SandboxError(code, `${this.#label}: ${why}`));
    }
    // New requests get a fresh worker; start it now rather than on the next request.
    if (this.#state === 'running') void this.#ensureWorker().catch(() => {});
  }

  /** Delivers a failure: rejects a pending head or errors a streaming body. */
  #fail(entry: Entry, error: unknown, countAsError = true): void {
    if (entry.phase === 'over') return this.#maybeDone(entry);
    this.#awaitingHead.delete(entry);
    if (entry.phase === 'head') entry.reject(error);
    else entry.body?.fail(error);
    entry.phase = 'over';
    if (countAsError) this.stats.errors++;
    this.#maybeDone(entry);
  }

  /** Forgets a request once its outcome is delivered and the worker is done with it. */
  #maybeDone(entry: Entry): void {
    if (entry.phase !== 'over') return;
    const worker = entry.worker;
    if (entry.settled || !worker || worker !== this.#worker) return this.#remove(entry);
    // `waitUntil` work gets as long as a handler would; a drain does not wait for it longer. A
    // handler that timed out and is still running then ignores its cancellation, maybe looping
    // with awaits in between (which pings do not see): only ending the worker stops it.
    entry.settleTimer ??= setTimeout(() => {
      this.#remove(entry);
      if (entry.timedOut) this.#recycle(worker, 'timeout', `a request that timed out was still running ${this.#limits.wallMs} ms later`);
    }, this.#limits.wallMs);
  }

  #remove(entry: Entry): void {
    if (!this.#pending.delete(entry.id)) return;
    const budget = entry.logBudget;
    if (budget && budget.cutLines > 0) entry.session?.sendLog(entry.requestId, 'cut', '', budget.cutLines, budget.cutBytes);
    this.#awaitingHead.delete(entry);
    clearTimeout(entry.settleTimer);
    entry.unlisten();
    this.stats.inFlight = this.#pending.size;
    if (this.#pending.size === 0) for (const finish of this.#drainWaiters.splice(0)) finish();
  }
}

/** A value stream from a worker, passed on only while its chunks are bytes (anything else errors it). */
function bytesOnly(body: ReadableStream<unknown>): ReadableStream<Uint8Array> {
  return body.pipeThrough(
    new TransformStream<unknown, Uint8Array>({
      transform(chunk, controller) {
        if (chunk instanceof Uint8Array) controller.enqueue(chunk);
        else if (chunk instanceof ArrayBuffer) controller.enqueue(new Uint8Array(chunk));
        else controller.error(new TypeError('a KV value stream must yield Uint8Array or ArrayBuffer chunks'));
      },
    }),
  );
}

/** A `Headers` with every line of `list`, Set-Cookie included (throws for an invalid one). */
function unguardedHeaders(list: Array<[string, string]>): Headers {
  const headers = new Headers();
  for (const [name, value] of list) headers.append(name, value);
  return headers;
}

function noop(): void {}

/** The `dcdn-request-id` the ingress gave the request (ingress/request-id.ts), or ''. */
function requestIdOf(headers: ReadonlyArray<readonly [string, string]>): string {
  for (const [name, value] of headers) if (name.length === 15 && name.toLowerCase() === 'dcdn-request-id') return value;
  return '';
}

/** One chunk of bytes as a stream of this realm. */
function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.byteLength > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}
