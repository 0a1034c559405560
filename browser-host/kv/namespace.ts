/**
 * `env.BINDING` for a KV binding: the Workers KV API (get, getWithMetadata, put, delete, list)
 * over a transport that carries each operation to the ingress as a stream of the session
 * (session-transport.ts in the page; a message to the page from a sandbox worker).
 *
 * Runtime-neutral: it runs in the host page and inside sandbox workers. Every operation is
 * checked again by the ingress, which alone decides; the checks here only make the common
 * mistakes fail at once with the same code.
 *
 * The wire (docs/kv.md): `GET|PUT|DELETE /kv/BINDING/<encoded key>` and `GET /kv/BINDING?prefix=
 * &limit=&cursor=` for list, options in `dcdn-kv-*` headers, errors as a status with a
 * `dcdn-error` code and a JSON `{code, message}` body.
 */
// A leaf import, not protocol/index.ts: this file is bundled into sandbox workers, and the index
// would pull msgpackr in with it. test/boundaries.test.ts allows it by name.
import { KV_HEADERS } from '../../protocol/kv-wire.ts';
import { readAnswerBody } from './answer-body.ts';
import { MIN_CACHE_TTL_SECONDS, type KvReadCache } from './read-cache.ts';

/** One KV operation on its way to the ingress. Bodies are bytes when small, else a stream. */
export interface KvCall {
  method: 'GET' | 'PUT' | 'DELETE' | 'POST';
  /** `/kv/BINDING/<key, percent-encoded>` or `/kv/BINDING?<list query>`; `POST /sql/BINDING` for a SQL call (browser-host/sql/database.ts). */
  path: string;
  headers: Array<[string, string]>;
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

/** The ingress's answer to a {@link KvCall}. */
export interface KvAnswer {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array | ReadableStream<Uint8Array> | null;
}

export type KvTransport = (call: KvCall) => Promise<KvAnswer>;

export type KvValueType = 'text' | 'json' | 'arrayBuffer' | 'stream';
export type KvGetOptions = KvValueType | { type?: KvValueType; cacheTtl?: number };

export interface KvPutOptions {
  /** Unix time in seconds after which the key is gone. */
  expiration?: number;
  /** Seconds from now after which the key is gone. */
  expirationTtl?: number;
  /** Any JSON value, at most 1 KiB serialised. */
  metadata?: unknown;
}

export interface KvListOptions {
  prefix?: string;
  limit?: number;
  cursor?: string;
}

export interface KvListKey<M = unknown> {
  name: string;
  expiration?: number;
  metadata?: M;
}

export interface KvListResult<M = unknown> {
  keys: Array<KvListKey<M>>;
  list_complete: boolean;
  cursor?: string;
  cacheStatus: null;
}

/** Most keys in one bulk `get([...])`, as Workers. */
const MAX_BULK_KEYS = 100;
/** Longest key, in UTF-8 bytes (the ingress's limit may differ; it decides). */
const KEY_BYTES = 512;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An error of a KV operation, with the stable code from docs/errors.md. */
export class KvError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(`${code}: ${message}`);
    this.name = 'KvError';
    this.code = code;
    this.status = status;
  }
}

export class KvNamespace {
  readonly #binding: string;
  readonly #send: KvTransport;
  readonly #reads: KvReadCache | null;

  /** @param reads Where gets with `cacheTtl` keep their copies (read-cache.ts); without it, cacheTtl is ignored. */
  constructor(binding: string, transport: KvTransport, reads: KvReadCache | null = null) {
    this.#binding = binding;
    this.#send = transport;
    this.#reads = reads;
  }

  /**
   * The value of `key` as text (default), JSON, an ArrayBuffer or a ReadableStream; null when
   * there is none. With an array of keys (at most 100), a Map of each key to its value.
   */
  get(key: string, options?: KvGetOptions): Promise<unknown>;
  get(keys: string[], options?: KvGetOptions): Promise<Map<string, unknown>>;
  async get(key: string | string[], options?: KvGetOptions): Promise<unknown> {
    if (Array.isArray(key)) {
      const type = valueType(options);
      if (type !== 'text' && type !== 'json') throw new TypeError('a bulk get() returns text or json values only');
      if (key.length === 0 || key.length > MAX_BULK_KEYS) throw new KvError('KV_BAD_KEY', 400, `a bulk get() takes 1 to ${MAX_BULK_KEYS} keys`);
      const values = await Promise.all(key.map((k) => this.get(k, type)));
      return new Map(key.map((k, i) => [k, values[i]]));
    }
    return (await this.getWithMetadata(key, options)).value;
  }

  /** The value and its metadata; both null when there is no such key. */
  async getWithMetadata<M = unknown>(key: string, options?: KvGetOptions): Promise<{ value: unknown; metadata: M | null; cacheStatus: null }> {
    const type = valueType(options);
    const ttl = typeof options === 'object' ? options.cacheTtl : undefined;
    if (ttl !== undefined && !(Number.isFinite(ttl) && ttl >= MIN_CACHE_TTL_SECONDS)) throw new KvError('KV_BAD_REQUEST', 400, `cacheTtl is at least ${MIN_CACHE_TTL_SECONDS} seconds`);
    const reads = ttl !== undefined ? this.#reads : null;
    const copy = reads?.get(this.#binding, key);
    if (copy) {
      if (copy.value === null) return { value: null, metadata: null, cacheStatus: null };
      return { value: await decode(copy.value.slice(), type), metadata: copy.metadata === undefined ? null : (JSON.parse(copy.metadata) as M), cacheStatus: null };
    }
    const answer = await this.#call('GET', key, { method: 'GET', path: this.#keyPath(key), headers: [], body: null });
    if (answer.status === 404) {
      await discard(answer.body);
      reads?.set(this.#binding, key, null, undefined, ttl!);
      return { value: null, metadata: null, cacheStatus: null };
    }
    const meta = header(answer, KV_HEADERS.metadata);
    // Only values that came whole (small) are kept: a streamed one was never held.
    if (reads && answer.body instanceof Uint8Array) reads.set(this.#binding, key, answer.body.slice(), meta, ttl!);
    const metadata = meta === undefined ? null : (JSON.parse(meta) as M);
    return { value: await decode(answer.body, type), metadata, cacheStatus: null };
  }

  /** Stores `value` (a string, ArrayBuffer, typed array or ReadableStream) under `key`. */
  async put(key: string, value: string | ArrayBuffer | ArrayBufferView | ReadableStream, options: KvPutOptions = {}): Promise<void> {
    const headers: Array<[string, string]> = [];
    if (options.expiration !== undefined) headers.push([KV_HEADERS.expiration, String(options.expiration)]);
    if (options.expirationTtl !== undefined) headers.push([KV_HEADERS.expirationTtl, String(options.expirationTtl)]);
    if (options.metadata !== undefined && options.metadata !== null) {
      let json: string | undefined;
      try {
        json = JSON.stringify(options.metadata);
      } catch {
        // reported below
      }
      if (json === undefined) throw new KvError('KV_METADATA_TOO_LARGE', 413, 'metadata must be serialisable as JSON');
      headers.push([KV_HEADERS.metadata, json]);
    }
    const body = toBody(value);
    this.#reads?.delete(this.#binding, key);
    const answer = await this.#call('PUT', key, { method: 'PUT', path: this.#keyPath(key), headers, body });
    await discard(answer.body);
  }

  /** Removes `key`; no error when it does not exist. */
  async delete(key: string): Promise<void> {
    this.#reads?.delete(this.#binding, key);
    const answer = await this.#call('DELETE', key, { method: 'DELETE', path: this.#keyPath(key), headers: [], body: null });
    await discard(answer.body);
  }

  /** Keys in UTF-8 byte order, at most `limit` (default and most 1000) per call. */
  async list<M = unknown>(options: KvListOptions = {}): Promise<KvListResult<M>> {
    const query = new URLSearchParams();
    if (options.prefix !== undefined && options.prefix !== null) query.set('prefix', String(options.prefix));
    if (options.limit !== undefined && options.limit !== null) query.set('limit', String(options.limit));
    if (options.cursor !== undefined && options.cursor !== null) query.set('cursor', String(options.cursor));
    const answer = await this.#call('LIST', '', { method: 'GET', path: `/kv/${this.#binding}?${query}`, headers: [], body: null });
    const result = (await decode(answer.body, 'json')) as { keys: Array<KvListKey<M>>; list_complete: boolean; cursor?: string };
    return { ...result, cacheStatus: null };
  }

  #keyPath(key: string): string {
    return `/kv/${this.#binding}/${encodeURIComponent(key)}`;
  }

  async #call(op: string, key: string, call: KvCall): Promise<KvAnswer> {
    if (op !== 'LIST') checkKey(key);
    const answer = await this.#send(call);
    if (answer.status < 400 || (answer.status === 404 && op === 'GET' && !answer.headers.some(([n]) => n === KV_HEADERS.error))) return answer;
    const code = header(answer, KV_HEADERS.error) ?? 'KV_BAD_REQUEST';
    let message = `KV ${op} failed with status ${answer.status}`;
    try {
      const body = (await decode(answer.body, 'json')) as { message?: unknown };
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // keep the generic message
    }
    throw new KvError(code, answer.status, message);
  }
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new TypeError('KV keys are strings');
  const bytes = encoder.encode(key).byteLength;
  if (bytes === 0 || bytes > KEY_BYTES || key === '.' || key === '..') {
    throw new KvError('KV_BAD_KEY', 400, `keys are 1 to ${KEY_BYTES} bytes of UTF-8 and not "." or ".." (got ${bytes} bytes)`);
  }
}

function valueType(options: KvGetOptions | undefined): KvValueType {
  const type = typeof options === 'string' ? options : (options?.type ?? 'text');
  if (type !== 'text' && type !== 'json' && type !== 'arrayBuffer' && type !== 'stream') throw new TypeError(`unknown KV value type ${JSON.stringify(type)}`);
  return type;
}

function toBody(value: unknown): Uint8Array | ReadableStream<Uint8Array> {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  if (value instanceof ReadableStream) return value as ReadableStream<Uint8Array>;
  throw new TypeError('KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values');
}

function header(answer: KvAnswer, name: string): string | undefined {
  return answer.headers.find(([n]) => n === name)?.[1];
}

async function decode(body: KvAnswer['body'], type: KvValueType): Promise<unknown> {
  if (type === 'stream') {
    if (body instanceof ReadableStream) return body;
    return new ReadableStream<Uint8Array>({
      start(controller) {
        if (body && body.byteLength > 0) controller.enqueue(body);
        controller.close();
      },
    });
  }
  const bytes = await readAnswerBody(body);
  if (type === 'arrayBuffer') return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const text = decoder.decode(bytes);
  return type === 'json' ? JSON.parse(text) : text;
}

async function discard(body: KvAnswer['body']): Promise<void> {
  if (body instanceof ReadableStream) await body.cancel().catch(() => {});
}

/** An answer carrying a failure, the way the ingress's errors reach a {@link KvNamespace}. */
export function kvErrorAnswer(code: string, status: number, message: string): KvAnswer {
  return { status, headers: [[KV_HEADERS.error, code]], body: encoder.encode(JSON.stringify({ code, message })) };
}
