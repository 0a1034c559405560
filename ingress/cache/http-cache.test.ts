/**
 * The cache's decisions with the clock under the test's control (fake timers move Date.now,
 * which http-cache-semantics reads): ages, staleness, revalidation headers, the LRU by bytes.
 * The forwarding around it is faked here only as far as `ProxyRequest` calls it; the real path
 * is test/ingress-cache.test.ts and test/e2e-cache.test.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HeaderList } from '../../protocol/index.ts';
import type { CacheExchange } from '../proxy.ts';
import { HttpCache } from './http-cache.ts';

interface Written {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A request and a response object recording what the cache writes. */
function exchangeOf(path: string, headers: Record<string, string> = {}, method = 'GET'): { req: IncomingMessage; res: ServerResponse; written: Written | null; r: Parameters<HttpCache['begin']>[0] } {
  const req = { method, headers: { host: 'app.example', ...headers } } as unknown as IncomingMessage;
  const out: { written: Written | null } = { written: null };
  let status = 0;
  let head: Record<string, string> = {};
  let body = '';
  const res = {
    destroyed: false,
    headersSent: false,
    writeHead(this: { headersSent: boolean }, s: number, flat: string[]) {
      status = s;
      head = {};
      for (let i = 0; i < flat.length; i += 2) head[flat[i]!] = flat[i + 1]!;
      this.headersSent = true;
    },
    write(chunk: Buffer) {
      body += chunk.toString();
      return true;
    },
    end(chunk?: Buffer) {
      if (chunk) body += chunk.toString();
      out.written = { status, headers: head, body };
    },
    on() {},
    off() {},
  } as unknown as ServerResponse;
  const r = { app: 'app', url: `http://app.example${path}`, req, res, headers: Object.entries(headers) as HeaderList };
  return {
    req,
    res,
    get written() {
      return out.written;
    },
    r,
  };
}

/** Runs a miss to its end: the host answers `status`, `headers` and `body`. */
function answer(ex: CacheExchange, status: number, headers: HeaderList, body: string): 'answered' | 'stored-or-not' {
  const sink = ex.onHead(status, [...headers, ['content-length', String(body.length)]]);
  if (sink === 'answered') {
    ex.done();
    return 'answered';
  }
  if (body && sink) sink.write(Buffer.from(body));
  sink?.end();
  ex.done();
  return 'stored-or-not';
}

let cache: HttpCache;
beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
  cache = new HttpCache({ maxBytes: 64 * 1024, maxEntryBytes: 16 * 1024 });
});
afterEach(() => vi.useRealTimers());

describe('HttpCache', () => {
  it('answers from memory while fresh, with the Age the clock says, and asks the handler once stale', async () => {
    const first = cache.begin(exchangeOf('/a').r) as CacheExchange;
    expect(first.label).toBe('MISS');
    answer(first, 200, [['cache-control', 'max-age=60'], ['etag', '"1"']], 'hello');
    vi.advanceTimersByTime(30_000);
    const hit = exchangeOf('/a');
    expect(cache.begin(hit.r)).toBeNull();
    await vi.runAllTimersAsync();
    expect(hit.written).toMatchObject({ status: 200, body: 'hello', headers: { age: '30', 'dcdn-cache': 'HIT', 'content-length': '5' } });
    vi.advanceTimersByTime(31_000);
    const stale = cache.begin(exchangeOf('/a').r) as CacheExchange;
    expect(stale).not.toBeNull();
    expect(stale.headers).toContainEqual(['if-none-match', '"1"']);
  });

  it('turns a 304 from the handler into a stored answer, fresh again', async () => {
    answer(cache.begin(exchangeOf('/b').r) as CacheExchange, 200, [['cache-control', 'max-age=10'], ['etag', '"b"']], 'body b');
    vi.advanceTimersByTime(20_000);
    const again = exchangeOf('/b');
    const ex = cache.begin(again.r) as CacheExchange;
    expect(answer(ex, 304, [['cache-control', 'max-age=10'], ['etag', '"b"']], '')).toBe('answered');
    await vi.runAllTimersAsync();
    expect(again.written).toMatchObject({ status: 200, body: 'body b' });
    expect(cache.begin(exchangeOf('/b').r)).toBeNull();
  });

  it('serves stale-while-revalidate within its window and not after', () => {
    answer(cache.begin(exchangeOf('/c').r) as CacheExchange, 200, [['cache-control', 'max-age=10, stale-while-revalidate=20']], 'c');
    vi.advanceTimersByTime(15_000);
    const inWindow = exchangeOf('/c');
    expect(cache.begin(inWindow.r)).toBeNull();
    expect(cache.stats.stale).toBe(1);
    vi.advanceTimersByTime(20_000);
    expect(cache.begin(exchangeOf('/c').r)).not.toBeNull();
  });

  it('evicts the least recently used to stay within its bytes, and never stores past the entry cap', () => {
    const body = 'x'.repeat(10 * 1024);
    for (let i = 0; i < 10; i++) answer(cache.begin(exchangeOf(`/lru/${i}`).r) as CacheExchange, 200, [['cache-control', 'max-age=60']], body);
    expect(cache.store.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(cache.store.evictions).toBeGreaterThan(0);
    expect(cache.begin(exchangeOf('/lru/9').r)).toBeNull();
    expect(cache.begin(exchangeOf('/lru/0').r)).not.toBeNull();
    answer(cache.begin(exchangeOf('/huge').r) as CacheExchange, 200, [['cache-control', 'max-age=60']], 'y'.repeat(20 * 1024));
    expect(cache.begin(exchangeOf('/huge').r)).not.toBeNull();
  });

  it('drops a purged app and does not store a fill that began before the purge', () => {
    answer(cache.begin(exchangeOf('/p').r) as CacheExchange, 200, [['cache-control', 'max-age=60']], 'p');
    const inFlight = cache.begin(exchangeOf('/q').r) as CacheExchange;
    expect(cache.purge('app')).toBe(1);
    answer(inFlight, 200, [['cache-control', 'max-age=60']], 'q');
    expect(cache.store.stats.entries).toBe(0);
  });

  it('answers stale within stale-if-error when the handler fails, validator or not', async () => {
    answer(cache.begin(exchangeOf('/e').r) as CacheExchange, 200, [['cache-control', 'max-age=10, stale-if-error=60']], 'old');
    vi.advanceTimersByTime(30_000);
    const failed = exchangeOf('/e');
    const ex = cache.begin(failed.r) as CacheExchange;
    expect(ex.onError('INGRESS_NO_HOST')).toBe(true);
    await vi.runAllTimersAsync();
    expect(failed.written).toMatchObject({ status: 200, body: 'old', headers: { 'dcdn-cache': 'STALE' } });
    vi.advanceTimersByTime(60_000);
    expect((cache.begin(exchangeOf('/e').r) as CacheExchange).onError('INGRESS_NO_HOST')).toBe(false);
  });

  it('labels other methods BYPASS and off means BYPASS for everything', () => {
    expect((cache.begin(exchangeOf('/x', {}, 'POST').r) as CacheExchange).label).toBe('BYPASS');
    const off = new HttpCache({ maxBytes: 0 });
    expect((off.begin(exchangeOf('/x').r) as CacheExchange).label).toBe('BYPASS');
  });
});
