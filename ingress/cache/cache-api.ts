/**
 * Serves handlers' Cache API (`caches.default`, `caches.open(name)`): streams a host opens on its
 * session, `GET|PUT|DELETE /cache/<name, encoded>/<URL, encoded>` (docs/cache.md has the wire).
 * Entries live in the ingress's HTTP cache memory, under keys of their own per app and cache name:
 * they share its byte budget, LRU and purges, and are never served to visitors directly.
 * Every operation is checked here, whatever the tab claims: the app must be one this host may
 * serve; what may be stored follows RFC 9111 as for the HTTP cache (no-store, private,
 * Set-Cookie, Vary: * are not stored).
 */
import CachePolicy from 'http-cache-semantics';
import { CACHE_HEADERS as H, DcdnError, errorCodeOf, streamBody, type ErrorCode, type HeaderList, type Stream } from '../../protocol/index.ts';
import type { HttpCache } from './http-cache.ts';
import { headerObject, makeEntry, unstorable, variantKey, varyNames } from './http-cache.ts';

/** Who opened the stream, as the ingress knows it. */
export interface CacheApiCaller {
  host: string;
  mayUse(app: string): boolean;
}

/** Longest cache name, in characters. */
const MAX_NAME = 256;

export class CacheApiService {
  readonly #cache: HttpCache;
  readonly #idleMs: number;
  readonly stats = { matches: 0, hits: 0, puts: 0, stored: 0, deletes: 0, errors: 0 };

  constructor(cache: HttpCache, idleTimeoutMs = 30_000) {
    this.#cache = cache;
    this.#idleMs = idleTimeoutMs;
  }

  /** Answers one cache stream; never throws (failures become a RESET with their code). */
  async serve(stream: Stream, caller: CacheApiCaller): Promise<void> {
    try {
      await this.#run(stream, caller);
    } catch (err) {
      this.stats.errors++;
      const code: ErrorCode = errorCodeOf(err) ?? 'CACHE_BAD_REQUEST';
      if (!stream.closed) stream.reset(code, (err as Error).message ?? String(err));
    }
  }

  async #run(stream: Stream, caller: CacheApiCaller): Promise<void> {
    const { method, url: path, app = '', headers } = stream.request;
    const parts = path.split('/'); // ['', 'cache', NAME, URL]
    if (parts.length !== 4 || parts[1] !== 'cache') throw new DcdnError('CACHE_BAD_REQUEST', 'cache paths are /cache/NAME/URL');
    if (!app || !caller.mayUse(app)) throw new DcdnError('CACHE_FORBIDDEN', `host ${caller.host} may not use the caches of app ${JSON.stringify(app)}`);
    let name: string;
    let url: URL;
    try {
      name = decodeURIComponent(parts[2]!);
      url = new URL(decodeURIComponent(parts[3]!));
    } catch {
      throw new DcdnError('CACHE_BAD_REQUEST', 'the cache name or URL is not valid percent-encoded UTF-8 or not a URL');
    }
    if (name.length === 0 || name.length > MAX_NAME) throw new DcdnError('CACHE_BAD_REQUEST', `cache names are 1 to ${MAX_NAME} characters`);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DcdnError('CACHE_BAD_REQUEST', 'only http(s) URLs are cached');
    url.hash = '';
    const href = url.href;
    const primary = `${app} API:${encodeURIComponent(name)} ${href}`;
    const where = { app, path: `${url.pathname}${url.search}`, primary };
    const store = this.#cache.store;
    switch (method) {
      case 'GET':
        return this.#match(stream, where, href, headers);
      case 'DELETE': {
        this.stats.deletes++;
        const n = store.deletePrimary(primary);
        return stream.respond({ status: n > 0 ? 200 : 404, headers: [] }, true);
      }
      case 'PUT':
        return this.#put(stream, where, href, headers);
      default:
        throw new DcdnError('CACHE_BAD_REQUEST', `unknown cache method ${method}`);
    }
  }

  async #match(stream: Stream, where: { app: string; path: string; primary: string }, href: string, headers: HeaderList): Promise<void> {
    this.stats.matches++;
    const store = this.#cache.store;
    const reqHeaders = headerObject(headers) as Record<string, string>;
    const vary = store.varyOf(where.primary);
    const entry = store.get(vary?.length ? variantKey(where.primary, vary, { headers: reqHeaders }) : where.primary);
    const verdict = entry?.policy.evaluateRequest({ url: href, method: 'GET', headers: { ...reqHeaders, host: new URL(href).host } });
    if (!entry || !verdict?.response || verdict.revalidation) return stream.respond({ status: 404, headers: [] }, true);
    this.stats.hits++;
    const out: HeaderList = [[H.status, String(entry.status)]];
    for (let i = 0; i < entry.headers.length; i += 2) out.push([entry.headers[i]!, entry.headers[i + 1]!]);
    out.push(['age', String(Math.max(0, Math.floor(entry.policy.age())))]);
    stream.respond({ status: 200, headers: out }, entry.size === 0);
    if (entry.size === 0) return;
    for (const chunk of entry.chunks) await this.#idle(stream.write(chunk), 'the tab took no more of the response');
    stream.end();
  }

  async #put(stream: Stream, where: { app: string; path: string; primary: string }, href: string, headers: HeaderList): Promise<void> {
    this.stats.puts++;
    const status = Number(headers.find(([n]) => n === H.status)?.[1]);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new DcdnError('CACHE_BAD_REQUEST', `${H.status} must be an HTTP status`);
    let requestHeaders: Record<string, string> = {};
    const requestJson = headers.find(([n]) => n === H.request)?.[1];
    if (requestJson !== undefined) {
      try {
        requestHeaders = Object.fromEntries(Object.entries(JSON.parse(requestJson) as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]));
      } catch {
        throw new DcdnError('CACHE_BAD_REQUEST', `${H.request} must be a JSON object`);
      }
    }
    const response = headers.filter(([n]) => !n.startsWith('dcdn-'));
    const resHeaders = headerObject(response);
    const host = new URL(href).host;
    // The response's own lifetime is measured from when the ingress got it (RFC 9111 §4.2.3).
    const policyReq = { url: href, method: 'GET', headers: { ...requestHeaders, host } };
    const policy = new CachePolicy(policyReq, { status, headers: resHeaders }, { shared: true });
    const max = this.#cache.options.maxEntryBytes;
    const why = this.#cache.enabled ? unstorable(policy, status, resHeaders, max) : 'cache off';
    if (why === 'too large') throw new DcdnError('CACHE_ENTRY_TOO_LARGE', `the response is larger than ${max} bytes`);
    if (why) {
      // Read to the end and dropped (flow control keeps it to a window at a time): an answer
      // before the body is done would reach the tab as a failed put.
      if (stream.requestHasBody) {
        const body = streamBody(stream);
        for (;;) if ((await this.#idle(body.next(), 'the tab sent no more of the response')).done) break;
      }
      return stream.respond({ status: 204, headers: [[H.stored, '0']] }, true);
    }
    const store = this.#cache.store;
    const chunks: Buffer[] = [];
    let size = 0;
    if (stream.requestHasBody) {
      const body = streamBody(stream);
      try {
        for (;;) {
          const next = await this.#idle(body.next(), 'the tab sent no more of the response');
          if (next.done) break;
          if (size + next.value.byteLength > max || !store.reserve(next.value.byteLength)) {
            throw new DcdnError('CACHE_ENTRY_TOO_LARGE', size + next.value.byteLength > max ? `the response is larger than ${max} bytes` : 'the cache has no room for the response');
          }
          size += next.value.byteLength;
          chunks.push(Buffer.from(next.value));
        }
      } catch (err) {
        store.release(size);
        throw err;
      }
    }
    const vary = varyNames(resHeaders);
    const key = vary.length ? variantKey(where.primary, vary, { headers: requestHeaders }) : where.primary;
    const flat: string[] = [];
    for (const [n, v] of response) flat.push(n, v);
    const entry = makeEntry(where, key, policy, status, flat, chunks, size);
    const stored = store.insert(entry, size, vary);
    if (stored) this.stats.stored++;
    stream.respond({ status: 204, headers: [[H.stored, stored ? '1' : '0']] }, true);
  }

  /** `work`, or KV_TIMEOUT (the code of a value a tab stalls, KV's or the cache's) past the idle timeout. */
  #idle<T>(work: Promise<T>, what: string): Promise<T> {
    work.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new DcdnError('KV_TIMEOUT', `${what} for ${this.#idleMs} ms`)), this.#idleMs);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }
}
