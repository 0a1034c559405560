/**
 * The ingress's HTTP cache: a shared cache in the sense of RFC 9111, in memory, keyed per app.
 * The rules (what may be stored, for how long, whether a stored response may answer a request,
 * how to revalidate it) are http-cache-semantics'; this file decides what the ingress does with
 * them: answer from memory, forward with validators, copy a body into memory while it streams to
 * the client, fetch one miss once however many clients ask, and revalidate in the background.
 * docs/cache.md describes the behaviour; the hook into forwarding is `ProxyCache` (proxy.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import CachePolicy from 'http-cache-semantics';
import type { ErrorCode, HeaderList } from '../../protocol/index.ts';
import { forwardResponseHeaders } from '../http-headers.ts';
import type { CacheExchange, CacheSink, ProxyCache } from '../proxy.ts';
import { REQUEST_ID_HEADER, traceOf } from '../request-id.ts';
import { CacheStore, ENTRY_OVERHEAD, type CacheEntry } from './cache-store.ts';
import { HTTP_CACHE_DEFAULTS, type HttpCacheOptions } from './cache-defaults.ts';
import { Fill } from './fill.ts';
import { serveEntry, type CacheLabel } from './serve-entry.ts';

export { HTTP_CACHE_DEFAULTS, type HttpCacheOptions };

/** A response fetched from a handler without a client waiting (a background revalidation). */
export interface OriginAnswer {
  status: number;
  headers: HeaderList;
  body: AsyncIterable<Uint8Array>;
  /** Stops the body (it will not be read further). */
  cancel(): void;
}

/** Fetches from the app's handler; rejects when no host answered. */
export type OriginFetch = (r: { app: string; url: string; headers: HeaderList }) => Promise<OriginAnswer>;

export type CacheLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

export interface HttpCacheStats {
  hits: number;
  misses: number;
  stale: number;
  bypasses: number;
  /** Responses stored. */
  stores: number;
  /** Body bytes answered from memory. */
  bytesServed: number;
  /** Body bytes copied into memory. */
  bytesStored: number;
  /** Background revalidations started. */
  revalidations: number;
  purged: number;
  /** Requests that waited for another fetching the same response (coalescing). */
  coalesced: number;
}

/** Statuses RFC 9111 lets a cache store (those http-cache-semantics understands, minus 206: ranges are not stored). */
const STORABLE_STATUSES = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]);
/** Request headers that make the cache step aside: ranges are not served from memory. */
const CONDITIONALS = new Set(['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range']);
/** Most URLs remembered as not storable (each costs a map slot). */
const MAX_PASS_MARKS = 100_000;

/** What a routed request looks like to the cache. */
interface Ask {
  app: string;
  url: string;
  path: string;
  primary: string;
  req: IncomingMessage;
  res: ServerResponse;
  headers: HeaderList;
  /** What http-cache-semantics is shown of the request. */
  policyReq: CachePolicy.Request;
}

export class HttpCache implements ProxyCache {
  readonly store: CacheStore;
  readonly options: HttpCacheOptions;
  readonly stats: HttpCacheStats = { hits: 0, misses: 0, stale: 0, bypasses: 0, stores: 0, bytesServed: 0, bytesStored: 0, revalidations: 0, purged: 0, coalesced: 0 };
  /** Misses being fetched, by the key they were asked under: later askers wait for them. */
  readonly #fills = new Map<string, Fill>();
  /** URLs (primary keys) whose responses were not storable, until when (ms since the epoch). */
  readonly #pass = new Map<string, number>();
  /** Bumped by each purge of an app: a fill begun before it is not stored. */
  readonly #generation = new Map<string, number>();
  readonly #revalidate: OriginFetch | null;
  readonly #log: CacheLog;

  constructor(options: Partial<HttpCacheOptions> = {}, revalidate: OriginFetch | null = null, log: CacheLog = () => {}) {
    this.options = { ...HTTP_CACHE_DEFAULTS, ...options };
    this.store = new CacheStore(this.options.maxBytes);
    this.#revalidate = revalidate;
    this.#log = log;
  }

  get enabled(): boolean {
    return this.options.maxBytes > 0;
  }

  /** Drops `app`'s stored responses (all, or those whose path starts with `prefix`). Returns how many. */
  purge(app: string, prefix?: string): number {
    this.#generation.set(app, (this.#generation.get(app) ?? 0) + 1);
    for (const primary of this.#pass.keys()) if (primary.startsWith(`${app} `)) this.#pass.delete(primary);
    const n = this.store.purge(app, prefix);
    this.stats.purged += n;
    return n;
  }

  begin(r: { app: string; url: string; req: IncomingMessage; res: ServerResponse; headers: HeaderList }): CacheExchange | null | Promise<CacheExchange | null> {
    const { req } = r;
    const method = req.method ?? 'GET';
    if (!this.enabled || (method !== 'GET' && method !== 'HEAD')) {
      this.stats.bypasses++;
      // RFC 9111 §4.4: a successful unsafe request invalidates what is stored for its URL.
      return this.#bypass(r.headers, this.enabled && !SAFE_METHODS.has(method) ? keyOf(r.app, r.url) : null);
    }
    if (req.headers.range !== undefined || (req as IncomingMessage & { upgrade?: boolean }).upgrade) {
      this.stats.bypasses++;
      return this.#bypass(r.headers, null);
    }
    const ask = this.#ask(r);
    return this.#decide(ask, true);
  }

  #ask(r: { app: string; url: string; req: IncomingMessage; res: ServerResponse; headers: HeaderList }): Ask {
    const at = r.url.indexOf('/', r.url.indexOf('//') + 2);
    return {
      ...r,
      path: at === -1 ? '/' : r.url.slice(at),
      primary: keyOf(r.app, r.url),
      policyReq: { url: r.url, method: 'GET', headers: r.req.headers as CachePolicy.Headers },
    };
  }

  /** Answers from memory, waits for a fill, or forwards; `coalesce` false after one wait. */
  #decide(ask: Ask, coalesce: boolean): CacheExchange | null | Promise<CacheExchange | null> {
    const { req, primary } = ask;
    const vary = this.store.varyOf(primary);
    const key = vary ? variantKey(primary, vary, req) : primary;
    const entry = this.store.get(key);
    const authorized = req.headers.authorization !== undefined;
    if (entry && (!authorized || entry.authorizedOk)) {
      const now = Date.now();
      // The common hit: fresh, no Vary, a plain request. Anything else asks the library.
      if (now < entry.freshUntil && !entry.varies && req.headers['cache-control'] === undefined && req.headers.pragma === undefined) {
        this.#answer(ask, entry, 'HIT');
        return null;
      }
      const verdict = entry.policy.evaluateRequest(ask.policyReq);
      if (verdict.response && !verdict.revalidation) {
        this.#answer(ask, entry, 'HIT');
        return null;
      }
      if (verdict.response && verdict.revalidation && !verdict.revalidation.synchronous) {
        this.#answer(ask, entry, 'STALE');
        this.#revalidateInBackground(ask, entry);
        return null;
      }
      // It must be revalidated before use: ask the handler, with the stored validators.
      if (req.method === 'GET' && hasValidators(entry)) return this.#lead(ask, key, entry, coalesce, entry);
    }
    // A stored response that cannot answer now may still answer if the handler fails (stale-if-error).
    const stale = entry && (!authorized || entry.authorizedOk) ? entry : undefined;
    if (req.method !== 'GET' || authorized || this.#passing(primary)) return this.#pass1(ask, stale);
    return this.#lead(ask, key, null, coalesce, stale);
  }

  #passing(primary: string): boolean {
    const until = this.#pass.get(primary);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#pass.delete(primary);
    return false;
  }

  #markPass(primary: string): void {
    this.#pass.delete(primary);
    if (this.#pass.size >= MAX_PASS_MARKS) this.#pass.delete(this.#pass.keys().next().value!);
    this.#pass.set(primary, Date.now() + this.options.passTtlMs);
  }

  /** A request the cache forwards without storing what comes back (another method, a range). */
  #bypass(headers: HeaderList, invalidates: string | null): CacheExchange {
    const store = this.store;
    return {
      headers,
      label: 'BYPASS',
      onHead(status) {
        if (invalidates && status < 400) store.deletePrimary(invalidates);
        return null;
      },
      onError: () => false,
      done() {},
    };
  }

  /** A miss forwarded on its own (no coalescing); its answer is still stored when it may be. */
  #pass1(ask: Ask, stale: CacheEntry | undefined): CacheExchange {
    this.stats.misses++;
    return this.#exchange(ask, ask.primary, null, stale && ask.req.method === 'GET' && hasValidators(stale) ? stale : null, stale);
  }

  /**
   * The first request for a key: forwarded, and followed by every later request for the key until
   * its answer is known (coalescing). `revalidating` is the stored entry it checks with the handler.
   */
  #lead(ask: Ask, key: string, revalidating: CacheEntry | null, coalesce: boolean, stale: CacheEntry | undefined): CacheExchange | null | Promise<CacheExchange | null> {
    const waiting = this.#fills.get(key);
    if (waiting && coalesce) return this.#follow(ask, waiting);
    if (waiting) return this.#pass1(ask, stale);
    this.stats.misses++;
    const fill = new Fill(key);
    this.#fills.set(key, fill);
    return this.#exchange(ask, key, fill, revalidating, stale);
  }

  /**
   * Waits for the request fetching the same key. Once its answer is being stored with a known
   * length the body streams from it; once stored, it is served whole; if it cannot be stored,
   * this request asks again (a hit under Vary, or a miss of its own).
   */
  async #follow(ask: Ask, fill: Fill): Promise<CacheExchange | null> {
    this.stats.coalesced++;
    for (;;) {
      if (fill.state === 'streaming' && fill.length !== undefined && !fill.entryVaries) {
        this.stats.hits++;
        const sent = await fill.streamTo(ask.req, ask.res, [...extraOf(ask.req), 'dcdn-cache', 'HIT']);
        this.stats.bytesServed += sent;
        return null;
      }
      if (fill.state !== 'pending' && fill.state !== 'streaming') break;
      await fill.changed();
      if (ask.res.destroyed) return null;
    }
    return this.#decide(ask, false);
  }

  /** Writes a stored response to the client, and counts it. */
  #answer(ask: Ask, entry: CacheEntry, label: CacheLabel): void {
    if (label === 'HIT') this.stats.hits++;
    else this.stats.stale++;
    void serveEntry(ask.req, ask.res, entry, label, extraOf(ask.req)).then((n) => (this.stats.bytesServed += n));
  }

  /**
   * The forwarded request of a miss or a revalidation. The client's own validators are taken off
   * (the cache wants a whole response to store, RFC 9111 §4.3.1); the stored ones go on when
   * `revalidating` an entry. `stale` may answer if the handler fails (stale-if-error).
   */
  #exchange(ask: Ask, key: string, fill: Fill | null, revalidating: CacheEntry | null, stale: CacheEntry | undefined): CacheExchange {
    let headers = ask.headers.filter(([n]) => !CONDITIONALS.has(n.toLowerCase()));
    if (revalidating) {
      const validators = revalidating.policy.revalidationHeaders({ ...ask.policyReq, headers: withoutConditionals(ask.req.headers) });
      for (const name of ['if-none-match', 'if-modified-since']) if (validators[name]) headers.push([name, String(validators[name])]);
    }
    const generation = this.#generation.get(ask.app) ?? 0;
    let over = false;
    const finish = () => {
      if (over) return;
      over = true;
      // Failed before any answer (no host, timeout): those waiting go to the handler themselves
      // at once rather than one after another (RELIABILITY: no unbounded queueing).
      if (fill?.state === 'pending') this.#markPass(ask.primary);
      if (fill) {
        if (this.#fills.get(key) === fill) this.#fills.delete(key);
        fill.fail();
      }
    };
    const exchange: CacheExchange = {
      headers,
      label: 'MISS',
      onHead: (status, head) => {
        const resHeaders = headerObject(head);
        if (revalidating && status === 304) {
          const { policy, modified } = revalidating.policy.revalidatedPolicy(ask.policyReq, { status, headers: resHeaders });
          if (!modified) {
            refresh(revalidating, policy);
            this.#answer(ask, revalidating, 'HIT');
            fill?.stored(revalidating);
            finish();
            return 'answered';
          }
        }
        if (stale && status >= 500 && staleIfError(stale)) {
          this.#answer(ask, stale, 'STALE');
          finish();
          return 'answered';
        }
        if (ask.req.method !== 'GET') return null;
        const policy = new CachePolicy(ask.policyReq, { status, headers: resHeaders }, { shared: true });
        const why = this.#unstorable(policy, status, resHeaders);
        if (why) {
          this.#markPass(ask.primary);
          // A stored response the handler now answers differently for is gone.
          if (revalidating) this.store.delete(revalidating.key);
          finish();
          return null;
        }
        const vary = varyNames(resHeaders);
        const entryKey = vary.length ? variantKey(ask.primary, vary, ask.req) : ask.primary;
        const stored = forwardResponseHeaders(head, []);
        const sink = this.#sink(ask, fill, policy, status, stored, entryKey, vary, generation, finish);
        const length = declared(resHeaders);
        fill?.streaming(status, length, vary.length > 0, length === undefined ? [] : [...storedHeaders(stored, length), 'age', '0']);
        return sink;
      },
      onError: (_code: ErrorCode) => {
        if (!stale || !staleIfError(stale)) return false;
        this.#answer(ask, stale, 'STALE');
        finish();
        return true;
      },
      done: finish,
    };
    return exchange;
  }

  #unstorable(policy: CachePolicy, status: number, headers: CachePolicy.Headers): string | null {
    return unstorable(policy, status, headers, this.options.maxEntryBytes);
  }


  /** Copies a body into memory as it streams to the client; stores it when whole. */
  #sink(ask: Ask, fill: Fill | null, policy: CachePolicy, status: number, headers: string[], key: string, vary: string[], generation: number, finish: () => void): CacheSink {
    const store = this.store;
    const chunks: Buffer[] = fill ? fill.chunks : [];
    let size = 0;
    let dead = false;
    const abandon = () => {
      if (dead) return;
      dead = true;
      store.release(size);
      finish();
    };
    return {
      write: (chunk) => {
        if (dead) return;
        if (size + chunk.byteLength > this.options.maxEntryBytes || !store.reserve(chunk.byteLength)) {
          this.#markPass(ask.primary);
          return abandon();
        }
        size += chunk.byteLength;
        chunks.push(Buffer.from(chunk));
        fill?.grew();
      },
      end: () => {
        if (dead) return;
        dead = true;
        if ((this.#generation.get(ask.app) ?? 0) !== generation) {
          store.release(size);
          return finish();
        }
        const entry = makeEntry(ask, key, policy, status, headers, chunks, size);
        if (store.insert(entry, size, vary)) {
          this.stats.stores++;
          this.stats.bytesStored += size;
          fill?.stored(entry);
        }
        finish();
      },
      abort: abandon,
    };
  }

  /** stale-while-revalidate: one background request per entry at a time (RFC 5861 §3). */
  #revalidateInBackground(ask: Ask, entry: CacheEntry): void {
    if (entry.revalidating || !this.#revalidate) return;
    entry.revalidating = true;
    this.stats.revalidations++;
    const headers = ask.headers.filter(([n]) => !CONDITIONALS.has(n.toLowerCase()));
    const validators = entry.policy.revalidationHeaders({ ...ask.policyReq, headers: withoutConditionals(ask.req.headers) });
    for (const name of ['if-none-match', 'if-modified-since']) if (validators[name]) headers.push([name, String(validators[name])]);
    const generation = this.#generation.get(ask.app) ?? 0;
    void this.#revalidate({ app: ask.app, url: ask.url, headers })
      .then(async (answer) => {
        const resHeaders = headerObject(answer.headers);
        if (answer.status === 304) {
          answer.cancel();
          const { policy, modified } = entry.policy.revalidatedPolicy(ask.policyReq, { status: 304, headers: resHeaders });
          if (!modified) refresh(entry, policy);
          return;
        }
        const policy = new CachePolicy(ask.policyReq, { status: answer.status, headers: resHeaders }, { shared: true });
        if (this.#unstorable(policy, answer.status, resHeaders)) {
          answer.cancel();
          // A handler that fails keeps the stale response in use (stale-if-error); one that now
          // answers with something not storable has replaced it.
          if (answer.status < 500) this.store.delete(entry.key);
          return;
        }
        const vary = varyNames(resHeaders);
        const key = vary.length ? variantKey(ask.primary, vary, ask.req) : ask.primary;
        const chunks: Buffer[] = [];
        let size = 0;
        try {
          for await (const chunk of answer.body) {
            if (size + chunk.byteLength > this.options.maxEntryBytes || !this.store.reserve(chunk.byteLength)) {
              answer.cancel();
              this.store.release(size);
              return;
            }
            size += chunk.byteLength;
            chunks.push(Buffer.from(chunk));
          }
        } catch {
          this.store.release(size);
          return;
        }
        if ((this.#generation.get(ask.app) ?? 0) !== generation) return void this.store.release(size);
        if (this.store.insert(makeEntry(ask, key, policy, answer.status, forwardResponseHeaders(answer.headers, []), chunks, size), size, vary)) {
          this.stats.stores++;
          this.stats.bytesStored += size;
        }
      })
      .catch((err: unknown) => this.#log('warn', 'cache revalidation failed', { app: ask.app, url: ask.url, err: (err as Error)?.message }))
      .finally(() => {
        entry.revalidating = false;
      });
  }
}


/** Why a response is not stored, or null when it is (RFC 9111 §3 via the library, plus this cache's limits). */
export function unstorable(policy: CachePolicy, status: number, headers: CachePolicy.Headers, maxEntryBytes: number): string | null {
  if (!STORABLE_STATUSES.has(status)) return 'status';
  if (!policy.storable()) return 'policy';
  // A shared cache must not hand one client's cookie to the next (RFC 6265 §8.3; RFC 9111
  // allows storing it, but no serious CDN does by default).
  if (headers['set-cookie'] !== undefined) return 'set-cookie';
  if (String(headers.vary ?? '').split(',').some((v) => v.trim() === '*')) return 'vary *';
  const length = declared(headers);
  if (length !== undefined && length > maxEntryBytes) return 'too large';
  // Stored only to be revalidated at once: worth it only with a validator to revalidate with.
  if (policy.timeToLive() <= 0 && headers.etag === undefined && headers['last-modified'] === undefined) return 'no lifetime';
  return null;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PROPFIND', 'REPORT', 'SEARCH']);

/** The key before Vary: app, method and URL. */
function keyOf(app: string, url: string): string {
  return `${app} GET ${url}`;
}

/** The key of one variant: the primary key and the values of the request headers it varies on. */
export function variantKey(primary: string, vary: string[], req: { headers: Record<string, string | string[] | undefined> }): string {
  let key = primary;
  for (const name of vary) {
    const v = req.headers[name];
    key += `\n${name}:${Array.isArray(v) ? v.join(', ') : (v ?? '')}`;
  }
  return key;
}

export function varyNames(headers: CachePolicy.Headers): string[] {
  const vary = headers.vary;
  if (vary === undefined) return [];
  return [...new Set(String(vary).split(',').map((v) => v.trim().toLowerCase()).filter(Boolean))].sort();
}

/** Response headers as http-cache-semantics takes them: lower-case names, repeated ones joined. */
export function headerObject(head: HeaderList): CachePolicy.Headers {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, value] of head) {
    const lower = name.toLowerCase();
    out[lower] = out[lower] === undefined ? value : `${out[lower]}, ${value}`;
  }
  return out;
}

function withoutConditionals(headers: IncomingMessage['headers']): CachePolicy.Headers {
  const out: CachePolicy.Headers = {};
  for (const [name, value] of Object.entries(headers)) if (!CONDITIONALS.has(name) && value !== undefined) out[name] = value;
  return out;
}

export function declared(headers: CachePolicy.Headers): number | undefined {
  const v = headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function hasValidators(entry: CacheEntry): boolean {
  for (let i = 0; i < entry.headers.length; i += 2) if (entry.headers[i] === 'etag' || entry.headers[i] === 'last-modified') return true;
  return false;
}

/** Whether a stored response may answer now because the handler failed (RFC 5861 §4). */
function staleIfError(entry: CacheEntry): boolean {
  return entry.policy.revalidatedPolicy({ url: '', headers: {} }, { status: 500, headers: {} }).policy === entry.policy;
}

/** Headers every answer from memory carries besides the stored ones. */
function extraOf(req: IncomingMessage): string[] {
  return [REQUEST_ID_HEADER, traceOf(req).requestId];
}

/** Stored headers: lower-case names, no Age (it is computed per answer), the length of the body as stored. */
export function storedHeaders(flat: string[], size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    if (name === 'age' || name === 'content-length' || name === 'transfer-encoding' || name === 'set-cookie') continue;
    out.push(name, flat[i + 1]!);
  }
  out.push('content-length', String(size));
  return out;
}

export function makeEntry(ask: Pick<Ask, 'app' | 'path' | 'primary'>, key: string, policy: CachePolicy, status: number, flat: string[], chunks: Buffer[], size: number): CacheEntry {
  const headers = storedHeaders(flat, size);
  let headerBytes = 0;
  for (const h of headers) headerBytes += h.length;
  const entry: CacheEntry = {
    app: ask.app,
    path: ask.path,
    primary: ask.primary,
    key,
    policy,
    status,
    headers,
    chunks,
    size,
    cost: size + headerBytes + ENTRY_OVERHEAD,
    freshUntil: 0,
    authorizedOk: authorizedOk(headers),
    varies: key !== ask.primary,
    revalidating: false,
  };
  entry.freshUntil = freshUntil(policy);
  return entry;
}

/** RFC 9111 §3.5: a response to a request with Authorization may be reused only with one of these. */
function authorizedOk(headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'cache-control') continue;
    if (/(^|,)\s*(public|s-maxage|must-revalidate)\b/i.test(headers[i + 1]!)) return true;
  }
  return false;
}

function freshUntil(policy: CachePolicy): number {
  // maxAge() - age() is the remaining freshness; stale() is maxAge() <= age().
  const remaining = policy.maxAge() - policy.age();
  return remaining > 0 ? Date.now() + remaining * 1000 : 0;
}

/** A 304 confirmed a stored response: its policy and headers are the updated ones (RFC 9111 §4.3.4). */
function refresh(entry: CacheEntry, policy: CachePolicy): void {
  entry.policy = policy;
  const updated = policy.responseHeaders();
  const flat: string[] = [];
  for (const [name, value] of Object.entries(updated)) {
    if (name === 'age' || name === 'warning' || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) flat.push(name, v);
    else flat.push(name, String(value));
  }
  entry.headers = storedHeaders(flat, entry.size);
  entry.freshUntil = freshUntil(policy);
}
