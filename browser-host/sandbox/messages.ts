/**
 * The messages between the host page and an app's sandbox worker, and the checks the host runs
 * on everything that comes back.
 *
 * The worker runs the app's code in its own global, so anything it posts may have been forged by
 * that code (it can patch `MessagePort.prototype.postMessage` and find the port). The host
 * therefore treats every message from a sandbox as untrusted input: shapes are checked here, and
 * request ids are only looked up in the table of the port the message arrived on (sandbox.ts), so
 * the worst a sandbox can do is answer its own requests badly.
 *
 * Bodies travel as transferred `ReadableStream`s (https://streams.spec.whatwg.org/#rs-transfer):
 * each one is a cross-realm pipe with its own internal port and a queue of one chunk, so a body
 * streams with backpressure and never sits whole in either realm.
 */
// A leaf import, not protocol/index.ts: this file is bundled into every sandbox worker, and the
// index would pull msgpackr in with it (7 KB -> 47 KB). test/boundaries.test.ts allows it by name.
import { LIMITS } from '../../protocol/frames.ts';
import { CACHE_PATH_PREFIX } from '../../protocol/cache-wire.ts';
import type { SandboxLogLevel } from './console-capture.ts';

/** The codes a worker may report for one of its requests. Anything else is a protocol violation. */
export const WORKER_FAILURE_CODES = ['HOST_HANDLER_ERROR', 'HOST_BAD_HANDLER_RESPONSE'] as const;
export type WorkerFailureCode = (typeof WORKER_FAILURE_CODES)[number];

/** Posted by the frame bootstrap to the worker, with the sandbox's port, once. */
export interface InitMessage {
  t: 'init';
  appName: string;
  version: number;
  /** The app's bundled ES module. */
  code: string;
  env: Record<string, unknown>;
  /** KV bindings: `env.NAME` becomes a KV namespace whose calls come to the host as `kv` messages. */
  kv: string[];
  /** SQL bindings: `env.NAME` becomes a database whose calls come to the host as `kv` messages to `/sql/NAME`. */
  sql?: string[];
}

// Host → worker, over the sandbox's port.

/** One request. `body` is transferred; null for GET/HEAD and bodiless requests. */
export interface RequestMessage {
  t: 'request';
  id: number;
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: ReadableStream<Uint8Array> | null;
  /** The ingress times this request: answer with {@link HeadMessage.timing}. */
  timed?: true;
}

/** The host gave up on a request (caller aborted, time limit): abort its `request.signal`. */
export interface CancelMessage {
  t: 'cancel';
  id: number;
  reason: string;
}

/** Liveness probe; a worker whose event loop is free answers at once. */
export interface PingMessage {
  t: 'ping';
  n: number;
}

/** The answer to one of the worker's `kv` calls; `body` is transferred when it is a stream. */
export interface KvAnswerMessage {
  t: 'kv-answer';
  id: number;
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

export type HostMessage = RequestMessage | CancelMessage | PingMessage | KvAnswerMessage;

/**
 * Several messages in one, in order: each side gathers what it posts in one microtask checkpoint
 * (the requests of one channel message, the answers of one batch) and posts it as one message.
 * A cross-process `postMessage` costs far more than cloning a few more objects (measured: a
 * worker spent half its time in `postMessage` at 50 connections), so this saves whole IPC
 * messages and tasks per request. Messages that transfer a stream are never batched, so a
 * `DataCloneError` still lands on the one message that caused it. Batches do not nest.
 */
export interface BatchMessage<M> {
  t: 'batch';
  messages: M[];
}

/** Most messages one batch may carry; a longer one from a worker is refused whole. */
export const MAX_BATCH = 4096;

// Worker → host, over the sandbox's port.

export interface ReadyMessage {
  t: 'ready';
}

/** The app module did not load (threw, or has no default export with `fetch`). */
export interface LoadFailedMessage {
  t: 'load-failed';
  message: string;
}

export interface PongMessage {
  t: 'pong';
  n: number;
}

/**
 * The response head; `body` is the transferred response body, the whole body as bytes when the
 * app made it from a string or bytes of at most 64 KiB, or null when there is none.
 */
export interface HeadMessage {
  t: 'head';
  id: number;
  status: number;
  headers: Array<[string, string]>;
  body: ReadableStream<unknown> | Uint8Array | null;
  /**
   * The worker is already done with the request (no `ctx.waitUntil` work): the same as a
   * `settled` message right after, without the extra message.
   */
  settled?: boolean;
  /**
   * For a timed request: when the app's fetch() was called and when it resolved, in ms as
   * `performance.timeOrigin + performance.now()` in the worker. Forgeable like everything here:
   * it only ever feeds the waterfall (docs/performance.md), never a decision.
   */
  timing?: [handlerStart: number, handlerHead: number];
  /**
   * Status 101 only: the port of the accepted WebSocket's server end (websocket-pair.ts),
   * transferred. Its messages are {@link WsToHost} one way and {@link WsFromHost} the other.
   */
  ws?: MessagePort;
}

/**
 * Worker → host on a WebSocket's port: a message to send (a string is text, an ArrayBuffer
 * binary), a close (code 0: none), or the acknowledgement that a received message's listeners
 * ran (`bytes` as the host counted them: the host's credit goes back to the ingress on it).
 */
export type WsToHost = { t: 'send'; data: string | ArrayBuffer } | { t: 'close'; code: number; reason: string } | { t: 'ack'; bytes: number };

/** Host → worker on a WebSocket's port: a message that arrived, the peer's close (1006: lost), an error. */
export type WsFromHost = { t: 'message'; data: string | ArrayBuffer; bytes: number } | { t: 'close'; code: number; reason: string } | { t: 'error'; message: string };

/** Checks a message from a sandbox's WebSocket port (untrusted, as every worker message). */
export function parseWsMessage(data: unknown): WsToHost | string {
  if (typeof data !== 'object' || data === null) return 'not an object';
  const m = data as Record<string, unknown>;
  switch (m['t']) {
    case 'send':
      if (typeof m['data'] === 'string' || m['data'] instanceof ArrayBuffer) return { t: 'send', data: m['data'] };
      return 'send with data that is neither a string nor an ArrayBuffer';
    case 'close': {
      const code = m['code'];
      const reason = m['reason'];
      if (!isCount(code) || (code !== 0 && (code < 1000 || code > 4999))) return 'close with a bad code';
      if (typeof reason !== 'string' || reason.length > LIMITS.wsReasonLength) return 'close with a bad reason';
      return { t: 'close', code, reason };
    }
    case 'ack':
      return isCount(m['bytes']) ? { t: 'ack', bytes: m['bytes'] } : 'ack without a count';
    default:
      return 'unknown WebSocket message';
  }
}

/** The handler failed before producing a head. */
export interface FailMessage {
  t: 'fail';
  id: number;
  code: WorkerFailureCode;
  message: string;
  /** As {@link HeadMessage.settled}. */
  settled?: boolean;
}

/** The worker is done with a request, `ctx.waitUntil()` work included. */
export interface SettledMessage {
  t: 'settled';
  id: number;
}

/**
 * A KV operation of the app's (browser-host/kv/namespace.ts), or a Cache API one (path
 * `/cache/…`, browser-host/cache/cache-storage.ts); the host stamps the app's name on it.
 */
export interface KvCallMessage {
  t: 'kv';
  id: number;
  /** The request whose handler made the call (its answer goes over that request's session); 0 if unknown. */
  via: number;
  method: 'GET' | 'PUT' | 'DELETE' | 'POST';
  path: string;
  headers: Array<[string, string]>;
  body: Uint8Array | ReadableStream<unknown> | null;
}

/**
 * A line of the app's console output or an uncaught exception, for request `id`
 * (console-capture.ts); level `cut` carries no text, only how much the worker dropped over the
 * per-request limits. The host checks the limits again (sandbox.ts): this may be forged.
 */
export interface LogMessage {
  t: 'log';
  id: number;
  level: SandboxLogLevel;
  text: string;
  cutLines: number;
  cutBytes: number;
}

export type WorkerMessage = ReadyMessage | LoadFailedMessage | PongMessage | HeadMessage | FailMessage | SettledMessage | KvCallMessage | LogMessage;

const LOG_LEVELS: ReadonlySet<string> = new Set<SandboxLogLevel>(['log', 'info', 'warn', 'error', 'debug', 'exception', 'cut']);

const KV_METHODS: ReadonlySet<string> = new Set(['GET', 'PUT', 'DELETE']);

/**
 * Checks a message from a sandbox and returns it typed, or a reason it was refused. Only the
 * shape is checked here; whether the id is one of this port's requests is the caller's business.
 */
export function parseWorkerMessage(data: unknown): WorkerMessage | string {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return 'not an object';
  const m = data as Record<string, unknown>;
  switch (m['t']) {
    case 'ready':
      return { t: 'ready' };
    case 'load-failed':
      return { t: 'load-failed', message: clip(m['message']) };
    case 'pong':
      return isCount(m['n']) ? { t: 'pong', n: m['n'] } : 'pong without a counter';
    case 'settled':
      return isCount(m['id']) ? { t: 'settled', id: m['id'] } : 'settled without an id';
    case 'fail': {
      const code = m['code'];
      if (!isCount(m['id'])) return 'fail without an id';
      if (!WORKER_FAILURE_CODES.includes(code as WorkerFailureCode)) return `fail with an unknown code`;
      return { t: 'fail', id: m['id'], code: code as WorkerFailureCode, message: clip(m['message']), settled: m['settled'] === true };
    }
    case 'head': {
      const { id, status, headers, body } = m;
      if (!isCount(id)) return 'head without an id';
      const ws = m['ws'];
      if (status === 101) {
        if (!(ws instanceof MessagePort) || body !== null || !isHeaderList(headers, false)) return 'a 101 head without its WebSocket port';
        return { t: 'head', id, status, headers, body: null, settled: m['settled'] === true, ws };
      }
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) return `head with status ${String(status)}`;
      // Shape only: a head past the wire's limits is the app's mistake, answered with its code by
      // the runner (app-runner.ts), not a message to drop (the request would hang to its timeout).
      if (!isHeaderList(headers, false)) return 'head with malformed headers';
      if (body !== null && !(body instanceof ReadableStream) && !(body instanceof Uint8Array)) return 'head with a body that is neither a ReadableStream nor bytes';
      const timing = m['timing'];
      const head: HeadMessage = { t: 'head', id, status, headers, body, settled: m['settled'] === true };
      // A malformed timing is dropped, not refused: the answer itself is fine.
      if (Array.isArray(timing) && timing.length === 2 && timing.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0)) head.timing = [timing[0], timing[1]];
      return head;
    }
    case 'kv': {
      const { id, via, method, path, headers, body } = m;
      if (!isCount(id) || !isCount(via)) return 'kv without an id';
      // SQL calls (browser-host/sql/database.ts) travel the same way: POST /sql/BINDING.
      const sqlCall = method === 'POST' && typeof path === 'string' && path.startsWith('/sql/');
      if (typeof method !== 'string' || (!KV_METHODS.has(method) && !sqlCall)) return 'kv with an unknown method';
      if (typeof path !== 'string' || !(path.startsWith('/kv/') || path.startsWith(CACHE_PATH_PREFIX) || sqlCall) || path.length > LIMITS.urlLength) return 'kv with a bad path';
      if (!isHeaderList(headers, true)) return 'kv with malformed headers';
      if (body !== null && !(body instanceof ReadableStream) && !(body instanceof Uint8Array)) return 'kv with a body that is neither bytes nor a ReadableStream';
      return { t: 'kv', id, via, method: method as KvCallMessage['method'], path, headers, body };
    }
    case 'log': {
      const { id, level, text, cutLines, cutBytes } = m;
      if (!isCount(id)) return 'log without an id';
      if (typeof level !== 'string' || !LOG_LEVELS.has(level)) return 'log with an unknown level';
      if (typeof text !== 'string' || !isCount(cutLines) || !isCount(cutBytes)) return 'log with a bad text or counts';
      // Cut, not refused: the host's own budget (sandbox.ts) decides what is kept.
      return { t: 'log', id, level: level as SandboxLogLevel, text: text.length > LIMITS.logTextLength ? text.slice(0, LIMITS.logTextLength) : text, cutLines, cutBytes };
    }
    default:
      return `unknown message type ${JSON.stringify(String(m['t'])).slice(0, 40)}`;
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A list of [name, value] strings; with `wireLimits`, also within the wire's count and lengths (protocol/frames.ts). */
function isHeaderList(v: unknown, wireLimits: boolean): v is Array<[string, string]> {
  if (!Array.isArray(v) || (wireLimits && v.length > LIMITS.headerCount)) return false;
  const max = wireLimits ? LIMITS.headerLength : Infinity;
  return v.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string' && h[0].length <= max && h[1].length <= max);
}

function clip(v: unknown): string {
  const s = typeof v === 'string' ? v : 'no message';
  return s.length > LIMITS.messageLength ? `${s.slice(0, LIMITS.messageLength - 1)}…` : s;
}
