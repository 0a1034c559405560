/**
 * Entry point of an app's sandbox worker (bundled by build.ts, started by the frame bootstrap as a
 * module worker). Loads the app's module from a blob: URL and serves the requests that arrive on
 * the sandbox's port with its `fetch` handler, the way app-runner.ts does in the page.
 *
 * Everything here shares a global with the app's code, which may patch any of it: the host
 * checks what comes back (messages.ts), and this file only has to be right for honest apps.
 */
import type { AppModule, ExecutionContext } from '../module-runtime.ts';
import { describeError } from './errors.ts';
import { MAX_BATCH, type BatchMessage, type FailMessage, type HeadMessage, type HostMessage, type InitMessage, type KvAnswerMessage, type RequestMessage, type WorkerFailureCode, type WorkerMessage } from './messages.ts';
import { KvNamespace, type KvAnswer, type KvCall } from '../kv/namespace.ts';
import { SqlDatabase } from '../sql/database.ts';
import { CacheStorage } from '../cache/cache-storage.ts';
import { KvReadCache } from '../kv/read-cache.ts';
import { fixedBody, installResponseShim, makeRequest, responseHeaderList } from '../web-compat.ts';
import { captureConsole, RequestLogs } from './console-capture.ts';
import { SourceMap } from './source-map.ts';
import { runScheduledHandler, type ScheduledModule } from '../scheduled-event.ts';
// Leaf imports (the index would bundle msgpackr into every worker).
import { SCHEDULED_METHOD, SCHEDULED_OK_STATUS } from '../../protocol/scheduled-wire.ts';
import { installWebSocketPair, serverEndOf } from './websocket-pair.ts';

/** What we need of a dedicated worker's global (the project compiles against the DOM lib). */
interface WorkerScope {
  onmessage: ((event: MessageEvent) => void) | null;
  addEventListener(type: 'unhandledrejection', listener: (event: { reason: unknown; preventDefault(): void }) => void): void;
  addEventListener(type: 'error', listener: (event: { error: unknown; message: string }) => void): void;
}

// Responses from fetch() are instances of the native class, not of the shim: check against this.
const NativeResponse = globalThis.Response;
// Before the app loads, so the `Response` it sees keeps Set-Cookie (web-compat.ts).
installResponseShim();
installWebSocketPair();

const scope = globalThis as unknown as WorkerScope;
// The runtime's own complaints go to the real console, not to the app's captured one.
const runtimeError = console.error.bind(console);
scope.onmessage = (event) => {
  const port = event.ports[0];
  const init = event.data as InitMessage | null;
  if (!port || init?.t !== 'init') return;
  scope.onmessage = null;
  void new WorkerHost(port, init).start();
};

class WorkerHost {
  readonly #port: MessagePort;
  readonly #init: InitMessage;
  readonly #active = new Map<number, AbortController>();
  /** KV calls waiting for the host's answer. */
  readonly #kvCalls = new Map<number, (answer: KvAnswer) => void>();
  #nextKvId = 1;
  /** Copies of KV reads made with `cacheTtl`, this app's own (kv/read-cache.ts). */
  readonly #kvReads = new KvReadCache();
  #app: AppModule | null = null;
  /** The app module's blob: URL, as its stack frames name it. */
  #appUrl = '';
  /** Decoded on the first exception that needs it (source-map.ts says why here). */
  #sourceMap: SourceMap | null | undefined;
  /** The app's console output and exceptions, per request (console-capture.ts). */
  readonly #logs = new RequestLogs(this.#active, (line) => this.#post({ t: 'log', ...line }));
  /** Replies posted in this microtask checkpoint, sent as one (messages.ts, BatchMessage). */
  #queue: WorkerMessage[] = [];
  readonly #flushQueue = () => this.#flush();

  constructor(port: MessagePort, init: InitMessage) {
    this.#port = port;
    this.#init = init;
  }

  /**
   * The `env` of one request: the variables, and KV bindings whose calls name the request, so
   * that they go back over the session it came on (the ingress that has the data).
   */
  #envFor(requestId: number): Record<string, unknown> {
    const sql = this.#init.sql ?? [];
    if (this.#init.kv.length === 0 && sql.length === 0) return this.#init.env;
    const transport = (call: KvCall) => this.#kv(call, requestId);
    return {
      ...this.#init.env,
      ...Object.fromEntries(this.#init.kv.map((name) => [name, new KvNamespace(name, transport, this.#kvReads)])),
      ...Object.fromEntries(sql.map((name) => [name, new SqlDatabase(name, transport)])),
    };
  }

  /** Sends a KV call to the host page, which carries it to the ingress. */
  #kv(call: KvCall, via: number): Promise<KvAnswer> {
    const id = this.#nextKvId++;
    return new Promise<KvAnswer>((resolve) => {
      this.#kvCalls.set(id, resolve);
      const { body } = call;
      this.#post({ t: 'kv', id, via, method: call.method, path: call.path, headers: call.headers, body }, body instanceof ReadableStream ? [body] : []);
    });
  }

  /** An error as its stack (or `Name: message`), positions in the app's bundle mapped to the user's source. */
  #describeError(err: unknown): string {
    if (!(err instanceof Error) || typeof err.stack !== 'string') return describeError(err);
    // V8's stack starts with `Name: message`; an app may have replaced it with anything.
    let stack = err.stack.includes(err.message) ? err.stack : `${describeError(err)}\n${err.stack}`;
    // Frames of this runtime (loaded from a data: URL) are noise to the app's author, and long.
    stack = stack.replace(/\n\s+at [^\n]*\(?data:text\/javascript[^\n]*/g, '');
    if (this.#sourceMap === undefined) this.#sourceMap = SourceMap.fromBundle(this.#init.code);
    return this.#sourceMap ? this.#sourceMap.mapStack(stack, this.#appUrl) : stack;
  }

  /** Sends the app's console to `dcdn tail`, and its uncaught errors with it. */
  #captureLogs(): void {
    captureConsole(console, this.#logs, (err) => this.#describeError(err));
    scope.addEventListener('unhandledrejection', (event) => {
      this.#logs.write('exception', `Uncaught (in promise) ${this.#describeError(event.reason)}`);
    });
    scope.addEventListener('error', (event) => {
      this.#logs.write('exception', `Uncaught ${event.error === undefined ? event.message : this.#describeError(event.error)}`);
    });
  }

  async start(): Promise<void> {
    this.#captureLogs();
    // Before the app loads, as in Workers: `caches` is a global. Its calls name no request (a
    // global cannot know which one is running), so they go over any session the tab has.
    Object.defineProperty(globalThis, 'caches', { value: new CacheStorage((call) => this.#kv(call, 0)), configurable: true, writable: false });
    // Answer pings while the module loads: a slow import is not a hung worker.
    this.#port.onmessage = (event) => {
      const data = event.data as HostMessage | BatchMessage<HostMessage>;
      if (data.t !== 'batch') return this.#onMessage(data);
      for (const message of data.messages) {
        try {
          this.#onMessage(message);
        } catch (err) {
          // As if it had been a message of its own: reported, and the rest still handled.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    };
    try {
      const url = URL.createObjectURL(new Blob([this.#init.code], { type: 'text/javascript' }));
      this.#appUrl = url;
      let mod: { default?: Partial<AppModule> };
      try {
        mod = (await import(/* @vite-ignore */ url)) as typeof mod;
      } finally {
        URL.revokeObjectURL(url);
      }
      const app = mod.default;
      if (!app || typeof app.fetch !== 'function') throw new TypeError('the module has no default export with a fetch() method');
      this.#app = app as AppModule;
      this.#postNow({ t: 'ready' });
    } catch (err) {
      this.#postNow({ t: 'load-failed', message: describeError(err) });
    }
  }

  /**
   * Posts a reply to the host. Replies without transfers are gathered and sent together once
   * the current microtasks have run; one that transfers a stream is sent at once (after those
   * gathered before it), so a body that cannot be transferred throws in the caller.
   */
  #post(message: WorkerMessage, transfer: Transferable[] = []): void {
    if (transfer.length > 0) return this.#postNow(message, transfer);
    this.#queue.push(message);
    if (this.#queue.length === 1) queueMicrotask(this.#flushQueue);
  }

  #postNow(message: WorkerMessage, transfer: Transferable[] = []): void {
    this.#flush();
    this.#port.postMessage(message, transfer);
  }

  #flush(): void {
    const all = this.#queue;
    if (all.length === 0) return;
    this.#queue = [];
    // The host refuses a batch longer than MAX_BATCH whole; console lines can make one that long.
    if (all.length <= MAX_BATCH) return this.#postBatch(all);
    for (let at = 0; at < all.length; at += MAX_BATCH) this.#postBatch(all.slice(at, at + MAX_BATCH));
  }

  #postBatch(queue: WorkerMessage[]): void {
    if (queue.length === 1) return this.#port.postMessage(queue[0]);
    try {
      this.#port.postMessage({ t: 'batch', messages: queue } satisfies BatchMessage<WorkerMessage>);
    } catch {
      // Something in the batch could not be cloned: send what can be, one by one.
      for (const message of queue) {
        try {
          this.#port.postMessage(message);
        } catch (err) {
          runtimeError(`dcdn: a reply could not be sent: ${describeError(err)}`);
        }
      }
    }
  }

  #onMessage(message: HostMessage): void {
    switch (message.t) {
      case 'ping':
        // At once: liveness is judged by when pongs arrive.
        return this.#postNow({ t: 'pong', n: message.n });
      case 'cancel':
        return this.#active.get(message.id)?.abort(new DOMException(message.reason, 'AbortError'));
      case 'request':
        if (!this.#app) return;
        if (message.method === SCHEDULED_METHOD) void this.#scheduled(this.#app, message);
        else void this.#serve(this.#app, message);
        return;
      case 'kv-answer':
        return this.#onKvAnswer(message);
    }
  }

  #onKvAnswer(message: KvAnswerMessage): void {
    const resolve = this.#kvCalls.get(message.id);
    if (!resolve) return;
    this.#kvCalls.delete(message.id);
    resolve({ status: message.status, headers: message.headers, body: message.body });
  }

  /** A cron tick (scheduled-event.ts): 204 once the handler and its waitUntil work settled, else the error with its stack. */
  async #scheduled(app: AppModule, message: RequestMessage): Promise<void> {
    const { id } = message;
    this.#active.set(id, new AbortController());
    let answer: HeadMessage | FailMessage;
    try {
      this.#logs.current = id;
      let pending: Promise<void>;
      try {
        pending = runScheduledHandler(app as AppModule & ScheduledModule, message.headers, this.#envFor(id));
      } finally {
        this.#logs.current = 0;
      }
      await pending;
      answer = { t: 'head', id, status: SCHEDULED_OK_STATUS, headers: [], body: null };
    } catch (err) {
      const text = this.#describeError(err);
      this.#logs.write('exception', `Uncaught (in scheduled) ${text}`, id);
      answer = { t: 'fail', id, code: 'HOST_HANDLER_ERROR', message: text };
    }
    this.#active.delete(id);
    this.#logs.end(id);
    answer.settled = true;
    this.#post(answer);
  }

  async #serve(app: AppModule, message: RequestMessage): Promise<void> {
    const { id, method } = message;
    const abort = new AbortController();
    this.#active.set(id, abort);
    const waits: Promise<unknown>[] = [];
    const ctx: ExecutionContext = {
      waitUntil: (p) => void waits.push(Promise.resolve(p).catch((e: unknown) => this.#logs.write('exception', `Uncaught (in waitUntil) ${this.#describeError(e)}`, id))),
      passThroughOnException: () => {},
    };
    let request: Request | null = null;
    let settled = false;
    const done = () => {
      this.#active.delete(id);
      // A request body the handler never touched would keep the host's side of it waiting.
      if (request?.body && !request.bodyUsed && !request.body.locked) void request.body.cancel().catch(() => {});
    };
    /**
     * Sends the head or failure. With no `waitUntil` work pending the request is over for this
     * worker: it says so in the same message (`settled`), which saves the host a message.
     */
    const reply = (m: HeadMessage | FailMessage, transfer: Transferable[] = []) => {
      if (waits.length > 0) return this.#post(m, transfer);
      // Before the message that settles it: the host forgets a request once it is settled.
      this.#logs.end(id);
      m.settled = true;
      this.#post(m, transfer);
      settled = true;
      done();
    };
    const fail = (code: WorkerFailureCode, text: string) => reply({ t: 'fail', id, code, message: text });
    try {
      request = makeRequest(message.url, { method, body: message.body, duplex: 'half', signal: abort.signal }, message.headers);
      let response: unknown;
      const started = message.timed ? performance.timeOrigin + performance.now() : 0;
      try {
        // Lines written before the handler's first await are this request's for certain.
        this.#logs.current = id;
        let pending: unknown;
        try {
          pending = app.fetch(request, this.#envFor(id), ctx);
        } finally {
          this.#logs.current = 0;
        }
        response = await pending;
      } catch (err) {
        this.#logs.write('exception', `Uncaught ${this.#describeError(err)}`, id);
        return fail('HOST_HANDLER_ERROR', describeError(err));
      }
      const timing: [number, number] | undefined = message.timed ? [started, performance.timeOrigin + performance.now()] : undefined;
      if (!(response instanceof NativeResponse)) return fail('HOST_BAD_HANDLER_RESPONSE', `fetch() returned ${typeName(response)}, not a Response`);
      if (response.status === 101) {
        // A WebSocket (websocket-pair.ts): its server end talks to the host over a port of its own.
        const server = serverEndOf(response);
        if (!server) return fail('HOST_BAD_HANDLER_RESPONSE', 'a 101 response needs the client end of a WebSocketPair as its webSocket');
        const channel = new MessageChannel();
        server.attach(channel.port1);
        return reply({ t: 'head', id, status: 101, headers: responseHeaderList(response.headers), body: null, ws: channel.port2 }, [channel.port2]);
      }
      const noBody = response.body === null || method === 'HEAD' || response.status === 204 || response.status === 304;
      if (noBody) void response.body?.cancel().catch(() => {});
      const fixed = noBody ? null : fixedBody(response);
      if (fixed) {
        // Made whole from a string or bytes: sent as bytes, no stream to transfer.
        void response.body?.cancel().catch(() => {});
        return reply({ t: 'head', id, status: response.status, headers: responseHeaderList(response.headers), body: fixed, ...(timing ? { timing } : {}) });
      }
      const body = noBody ? null : response.body;
      // Transferring the body hands it to the host as a stream with backpressure; a locked or
      // disturbed body cannot be transferred and lands in the catch below.
      reply({ t: 'head', id, status: response.status, headers: responseHeaderList(response.headers), body, ...(timing ? { timing } : {}) }, body ? [body] : []);
    } catch (err) {
      fail('HOST_HANDLER_ERROR', describeError(err));
    } finally {
      if (!settled) {
        // waitUntil() may be called while earlier promises are pending: wait until none is added.
        for (let seen = 0; seen < waits.length; seen = waits.length) await Promise.all(waits.slice(seen));
        done();
        this.#logs.end(id);
        this.#post({ t: 'settled', id });
      }
    }
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}
