/**
 * The Workers Cache API (`caches.default`, `caches.open(name)`) for handlers: `match`, `put` and
 * `delete` over a transport that carries each call to the ingress as a stream of the session,
 * the way KV's calls travel (kv/namespace.ts, kv/session-transport.ts). The ingress stores what
 * is put in its HTTP cache memory, per app and cache name, under RFC 9111's rules.
 *
 * What it refuses, as Workers does: `put` throws a TypeError for a non-GET request, a 206
 * response, a `Vary: *` response or a used body; responses with `Cache-Control: no-store` or
 * `private`, or with `Set-Cookie`, resolve but are not stored. `match` and `delete` of a non-GET
 * request find nothing unless `ignoreMethod` is set. docs/cache.md.
 *
 * Runtime-neutral: it runs inside sandbox workers (a leaf import of protocol/, no msgpackr).
 */
import { CACHE_HEADERS as H } from '../../protocol/cache-wire.ts';
import { readAnswerBody } from '../kv/answer-body.ts';
import type { KvAnswer, KvTransport } from '../kv/namespace.ts';

export interface CacheQueryOptions {
  ignoreMethod?: boolean;
}

/** An error of a Cache API call, with the stable code from docs/errors.md. */
export class CacheError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string) {
    super(`${code}: ${message}`);
    this.name = 'CacheError';
    this.code = code;
    this.status = status;
  }
}

/** One named cache. */
export class Cache {
  readonly #name: string;
  readonly #send: KvTransport;

  constructor(name: string, transport: KvTransport) {
    this.#name = name;
    this.#send = transport;
  }

  /** The stored response for `request`, or undefined. */
  async match(request: RequestInfo | URL, options: CacheQueryOptions = {}): Promise<Response | undefined> {
    const req = toRequest(request);
    if (req.method !== 'GET' && !options.ignoreMethod) return undefined;
    const headers: Array<[string, string]> = [];
    req.headers.forEach((value, name) => headers.push([name, value]));
    const answer = await this.#call({ method: 'GET', path: this.#path(req), headers, body: null });
    if (answer.status === 404) return undefined;
    const status = Number(answer.headers.find(([n]) => n === H.status)?.[1] ?? 200);
    const out = new Headers();
    for (const [n, v] of answer.headers) if (n !== H.status) out.append(n, v);
    const bodyless = status === 204 || status === 304 || (status >= 100 && status < 200);
    return new Response(bodyless ? null : toStream(answer.body), { status, headers: out });
  }

  /** Stores `response` for `request` (a GET), unless its headers forbid storing it. */
  async put(request: RequestInfo | URL, response: Response): Promise<void> {
    const req = toRequest(request);
    if (req.method !== 'GET') throw new TypeError('Cannot cache response to non-GET request.');
    if (!(response instanceof Response)) throw new TypeError('put() takes a Response');
    if (response.status === 206) throw new TypeError('Cannot cache response to a range request (206 Partial Content).');
    const vary = (response.headers.get('vary') ?? '').split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
    if (vary.includes('*')) throw new TypeError("Cannot cache response with 'Vary: *' header.");
    if (response.bodyUsed) throw new TypeError('Cannot cache a response whose body was already used.');
    const headers: Array<[string, string]> = [[H.status, String(response.status)]];
    response.headers.forEach((value, name) => headers.push([name, value]));
    if (vary.length) headers.push([H.request, JSON.stringify(Object.fromEntries(vary.map((n) => [n, req.headers.get(n) ?? ''])))]);
    const answer = await this.#call({ method: 'PUT', path: this.#path(req), headers, body: response.body as ReadableStream<Uint8Array> | null });
    await discard(answer.body);
  }

  /** Removes what is stored for `request`; true when something was. */
  async delete(request: RequestInfo | URL, options: CacheQueryOptions = {}): Promise<boolean> {
    const req = toRequest(request);
    if (req.method !== 'GET' && !options.ignoreMethod) return false;
    const answer = await this.#call({ method: 'DELETE', path: this.#path(req), headers: [], body: null });
    await discard(answer.body);
    return answer.status === 200;
  }

  #path(req: Request): string {
    const url = new URL(req.url);
    url.hash = '';
    return `/cache/${encodeURIComponent(this.#name)}/${encodeURIComponent(url.href)}`;
  }

  async #call(call: Parameters<KvTransport>[0]): Promise<KvAnswer> {
    const answer = await this.#send(call);
    if (answer.status < 400 || (answer.status === 404 && !answer.headers.some(([n]) => n === 'dcdn-error'))) return answer;
    const code = answer.headers.find(([n]) => n === 'dcdn-error')?.[1] ?? 'CACHE_BAD_REQUEST';
    let message = `cache ${call.method} failed with status ${answer.status}`;
    try {
      const body = JSON.parse(new TextDecoder().decode(await readAnswerBody(answer.body))) as { message?: unknown };
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // keep the generic message
    }
    throw new CacheError(code, answer.status, message);
  }
}

/** `caches`: the default cache and named ones. */
export class CacheStorage {
  readonly default: Cache;
  readonly #transport: KvTransport;
  readonly #named = new Map<string, Cache>();

  constructor(transport: KvTransport) {
    this.#transport = transport;
    this.default = new Cache('default', transport);
  }

  /** The cache called `name` (created on first use). */
  async open(name: string): Promise<Cache> {
    const key = String(name);
    if (key.length === 0 || key.length > 256) throw new CacheError('CACHE_BAD_REQUEST', 400, 'cache names are 1 to 256 characters');
    let cache = this.#named.get(key);
    // `default` by name is a cache of its own in Workers, not caches.default.
    if (!cache) this.#named.set(key, (cache = new Cache(`named:${key}`, this.#transport)));
    return cache;
  }
}

function toRequest(request: RequestInfo | URL): Request {
  return request instanceof Request ? request : new Request(request instanceof URL ? request.href : String(request));
}

function toStream(body: KvAnswer['body']): BodyInit | null {
  return body as BodyInit | null;
}

async function discard(body: KvAnswer['body']): Promise<void> {
  if (body instanceof ReadableStream) await body.cancel().catch(() => {});
}
