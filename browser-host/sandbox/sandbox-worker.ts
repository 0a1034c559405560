/**
 * One life of an app's sandbox: a frame, its worker, and the two ports to them. A sandbox that is
 * recycled throws its `SandboxWorker` away and starts another; the ids of requests sent to one
 * are only ever looked up for messages from that one's port.
 */
import { SandboxError } from './errors.ts';
import { openFrame, type SandboxFrame } from './frame.ts';
import {
  MAX_BATCH,
  parseWorkerMessage,
  type BatchMessage,
  type FailMessage,
  type HeadMessage,
  type HostMessage,
  type InitMessage,
  type KvCallMessage,
  type LogMessage,
  type SettledMessage,
} from './messages.ts';

/** The messages about requests; the rest are handled here. */
export type RequestReply = HeadMessage | FailMessage | SettledMessage;

export interface SandboxWorkerOptions {
  runtime: string;
  init: InitMessage;
  name: string;
  /** How long the module may take to load. */
  startMs: number;
  container?: Node;
  onreply(worker: SandboxWorker, message: RequestReply): void;
  /** A KV call of the app's; answer it with a `kv-answer` message to this worker. */
  onkv(worker: SandboxWorker, message: KvCallMessage): void;
  /** A line of the app's console output for one of its requests. */
  onlog(worker: SandboxWorker, message: LogMessage): void;
  /** A message that is not one the runtime would send: the app is tampering with its port. */
  onviolation(worker: SandboxWorker, reason: string): void;
  /** An uncaught error in the worker after it started (the app's own bug; logged only). */
  onworkererror(worker: SandboxWorker, message: string): void;
}

export class SandboxWorker {
  /** When the worker last answered a ping (`performance.now()`). */
  lastWorkerPong: number;
  /** When the frame's bootstrap last answered a ping; silence here means the process is gone. */
  lastFramePong: number;
  readonly #frame: SandboxFrame;
  readonly #options: SandboxWorkerOptions;
  /** Nonces of the last few pings. */
  readonly #nonces: number[] = [];
  #ready = false;
  #disposed = false;
  /** Messages posted in this microtask checkpoint, sent as one (messages.ts, BatchMessage). */
  #queue: HostMessage[] = [];
  readonly #flushQueue = () => this.#flush();

  private constructor(options: SandboxWorkerOptions) {
    this.#options = options;
    this.#frame = openFrame({ runtime: options.runtime, init: options.init, name: options.name, ...(options.container ? { container: options.container } : {}) });
    this.lastWorkerPong = this.lastFramePong = performance.now();
  }

  /**
   * Opens a frame, starts the worker and resolves once the app's module has loaded.
   *
   * @throws {SandboxError} `HOST_APP_LOAD_FAILED` when the module throws, has no `fetch`, or
   *   does not load within `startMs`; the frame is removed.
   */
  static start(options: SandboxWorkerOptions): Promise<SandboxWorker> {
    const worker = new SandboxWorker(options);
    return worker.#whenReady();
  }

  /**
   * Posts to the worker. Messages without transfers are gathered and sent together once the
   * current microtasks have run; one that transfers (a request or KV body) is sent at once,
   * after those gathered before it, so that a body that cannot be transferred throws here.
   */
  post(message: HostMessage, transfer: Transferable[] = []): void {
    if (this.#disposed) return;
    if (transfer.length > 0) {
      this.#flush();
      this.#frame.port.postMessage(message, transfer);
      return;
    }
    this.#queue.push(message);
    if (this.#queue.length === 1) queueMicrotask(this.#flushQueue);
  }

  #flush(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    if (this.#disposed) return;
    const port = this.#frame.port;
    if (queue.length === 1) return port.postMessage(queue[0]);
    port.postMessage({ t: 'batch', messages: queue } satisfies BatchMessage<HostMessage>);
  }

  /**
   * Asks both the worker and the frame to answer; see `lastWorkerPong` and `lastFramePong`.
   *
   * Each ping carries a random nonce and only a pong echoing a recent one counts: a worker stuck
   * in a loop cannot receive pings, so an app cannot fake liveness from inside its loop by posting
   * pongs on its port.
   */
  ping(): void {
    if (this.#disposed) return;
    const n = crypto.getRandomValues(new Uint32Array(1))[0]!;
    this.#nonces.push(n);
    if (this.#nonces.length > 4) this.#nonces.shift();
    this.#frame.port.postMessage({ t: 'ping', n } satisfies HostMessage);
    this.#frame.control.postMessage({ t: 'ping', n });
  }

  /** Removes the frame; the worker ends with it, in whatever loop it is. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#frame.dispose();
  }

  #whenReady(): Promise<SandboxWorker> {
    const { port, control } = this.#frame;
    return new Promise<SandboxWorker>((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        this.dispose();
        reject(new SandboxError('HOST_APP_LOAD_FAILED', `${this.#options.name}: ${why}`));
      };
      const timer = setTimeout(() => fail(`the module did not load within ${this.#options.startMs} ms`), this.#options.startMs);
      port.onmessage = (event) => {
        const message = parseWorkerMessage(event.data);
        if (typeof message === 'string') return fail(`unexpected message while loading: ${message}`);
        if (message.t === 'pong') return;
        if (message.t === 'load-failed') return fail(message.message);
        if (message.t !== 'ready') return fail(`unexpected ${message.t} message while loading`);
        clearTimeout(timer);
        this.#ready = true;
        this.lastWorkerPong = this.lastFramePong = performance.now();
        port.onmessage = (e) => this.#onPortMessage(e.data);
        resolve(this);
      };
      control.onmessage = (event) => {
        const data = event.data as { t?: unknown; n?: unknown; message?: unknown } | null;
        if (data?.t === 'pong' && this.#nonces.includes(data.n as number)) this.lastFramePong = performance.now();
        else if (data?.t === 'worker-error') {
          const text = typeof data.message === 'string' ? data.message.slice(0, 500) : 'unknown error';
          // Before `ready` the runtime itself failed to start; after, it is the app's uncaught error.
          if (this.#disposed) return;
          if (this.#ready) this.#options.onworkererror(this, text);
          else fail(`the worker failed: ${text}`);
        }
      };
    });
  }

  #onPortMessage(data: unknown): void {
    if (this.#disposed) return;
    const batch = data as Partial<BatchMessage<unknown>> | null;
    if (typeof batch !== 'object' || batch === null || batch.t !== 'batch') return this.#onMessage(data);
    const messages = batch.messages;
    if (!Array.isArray(messages) || messages.length > MAX_BATCH) return this.#options.onviolation(this, 'malformed batch');
    // A nested batch is an unknown message type to #onMessage: a violation, not a recursion.
    for (let i = 0; i < messages.length && !this.#disposed; i++) {
      try {
        this.#onMessage(messages[i]);
      } catch (err) {
        // As if it had been a message of its own: reported, and the rest still handled.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  #onMessage(data: unknown): void {
    const message = parseWorkerMessage(data);
    if (typeof message === 'string') return this.#options.onviolation(this, message);
    switch (message.t) {
      case 'pong':
        if (this.#nonces.includes(message.n)) this.lastWorkerPong = performance.now();
        return;
      case 'head':
      case 'fail':
      case 'settled':
        return this.#options.onreply(this, message);
      case 'kv':
        return this.#options.onkv(this, message);
      case 'log':
        return this.#options.onlog(this, message);
      default:
        return this.#options.onviolation(this, `unexpected ${message.t} message`);
    }
  }
}
