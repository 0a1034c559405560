/**
 * The ingress's HTTP cache against Node hosts that answer with chosen headers and count what
 * reaches them: real signaling, real HTTP on port 0, the real WebSocket transport. What the
 * handler sees (how often, with which validators) is the proof of every rule.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import type { Stream } from '../protocol/index.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';
import { httpReply, type Reply } from './http-reply.ts';

let net: NodeNetwork;
let ingress: Ingress;

beforeAll(async () => {
  net = await startNodeNetwork({
    cache: { maxBytes: 4 * 1024 * 1024, maxEntryBytes: 256 * 1024 },
    authorizeOperator: (t) => t === 'operator-token',
  });
  ingress = net.ingress;
});
afterAll(() => net.close());
afterEach(async () => {
  await net.removeHosts();
  ingress.cache.purge('');
});

interface Seen {
  url: string;
  headers: Record<string, string>;
}

type Answer = { status?: number; headers?: Array<[string, string]>; body?: string | Buffer };

/** A host whose answer for each request is `answer(request)`; every request is recorded in `seen`. */
function host(seen: Seen[], answer: (r: Seen) => Answer | Promise<Answer>) {
  return (s: Stream) => {
    const r: Seen = { url: new URL(s.request.url).pathname + new URL(s.request.url).search, headers: Object.fromEntries(s.request.headers.map(([n, v]) => [n.toLowerCase(), v])) };
    seen.push(r);
    s.onreset = () => {};
    void Promise.resolve(answer(r)).then((a) => {
      const body = typeof a.body === 'string' ? Buffer.from(a.body) : (a.body ?? Buffer.alloc(0));
      const status = a.status ?? 200;
      const bodyless = status === 304 || status === 204 || s.request.method === 'HEAD';
      s.respond({ status, headers: [...(a.headers ?? []), ...(bodyless ? [] : [['content-length', String(body.byteLength)] as [string, string]])] }, bodyless || body.byteLength === 0);
      if (bodyless || body.byteLength === 0) return;
      void s.write(body).then(() => s.end(), () => {});
    });
  };
}

function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return httpReply(`${ingress.url}${path}`, headers, method);
}

describe('the ingress HTTP cache', () => {
  it('runs a handler answering public, max-age=60 once for 1000 requests', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => ({ headers: [['cache-control', 'public, max-age=60'], ['content-type', 'text/plain']], body: 'hello' })));
    const first = await get('/hello');
    expect(first.headers['dcdn-cache']).toBe('MISS');
    const labels = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const replies = await Promise.all(Array.from({ length: 50 }, () => get('/hello')));
      for (const r of replies) {
        expect(r.body.toString()).toBe('hello');
        labels.set(String(r.headers['dcdn-cache']), (labels.get(String(r.headers['dcdn-cache'])) ?? 0) + 1);
        expect(r.headers.age).toBeDefined();
      }
    }
    expect(labels.get('HIT')).toBe(1000);
    expect(seen.length).toBe(1);
  });

  it('fetches one miss once however many clients ask at the same time', async () => {
    const seen: Seen[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await net.addHost('h', host(seen, async () => {
      await gate;
      return { headers: [['cache-control', 'max-age=60']], body: 'x'.repeat(100_000) };
    }));
    const before = ingress.cache.stats.coalesced;
    const replies = Promise.all(Array.from({ length: 20 }, () => get('/coalesced')));
    await until(() => ingress.cache.stats.coalesced - before === 19);
    release();
    for (const r of await replies) expect(r.body.length).toBe(100_000);
    expect(seen.length).toBe(1);
  });

  it('lets waiting requests go to the handler themselves when the answer cannot be stored', async () => {
    const seen: Seen[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await net.addHost('h', host(seen, async () => {
      await gate;
      return { headers: [['cache-control', 'no-store']], body: 'fresh' };
    }));
    const before = ingress.cache.stats.coalesced;
    const replies = Promise.all(Array.from({ length: 5 }, () => get('/nostore-burst')));
    await until(() => ingress.cache.stats.coalesced - before === 4);
    release();
    for (const r of await replies) expect(r.headers['dcdn-cache']).toBe('MISS');
    expect(seen.length).toBe(5);
  });

  it('keeps Vary variants apart', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, (r) => ({ headers: [['cache-control', 'max-age=60'], ['vary', 'Accept-Language']], body: `lang ${r.headers['accept-language'] ?? 'none'}` })));
    expect((await get('/v', { 'accept-language': 'fr' })).body.toString()).toBe('lang fr');
    expect((await get('/v', { 'accept-language': 'de' })).body.toString()).toBe('lang de');
    const fr = await get('/v', { 'accept-language': 'fr' });
    const de = await get('/v', { 'accept-language': 'de' });
    expect([fr.body.toString(), fr.headers['dcdn-cache']]).toEqual(['lang fr', 'HIT']);
    expect([de.body.toString(), de.headers['dcdn-cache']]).toEqual(['lang de', 'HIT']);
    expect(seen.length).toBe(2);
  });

  it('never answers from memory what is no-store, private, sets a cookie, or was asked with Authorization', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, (r) => {
      if (r.url === '/no-store') return { headers: [['cache-control', 'no-store, max-age=60']], body: 'a' };
      if (r.url === '/private') return { headers: [['cache-control', 'private, max-age=60']], body: 'b' };
      if (r.url === '/cookie') return { headers: [['cache-control', 'max-age=60'], ['set-cookie', 'session=1']], body: 'c' };
      return { headers: [['cache-control', 'max-age=60']], body: 'd' };
    }));
    for (const path of ['/no-store', '/private', '/cookie']) {
      for (let i = 0; i < 3; i++) expect((await get(path)).headers['dcdn-cache']).toBe('MISS');
    }
    for (let i = 0; i < 3; i++) expect((await get('/auth', { authorization: 'Bearer x' })).headers['dcdn-cache']).toBe('MISS');
    expect(seen.length).toBe(12);
  });

  it('answers 304 to a client whose ETag matches, and revalidates a stale response with the handler', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, (r) => (r.headers['if-none-match'] === '"v1"' ? { status: 304, headers: [['etag', '"v1"'], ['cache-control', 'max-age=0']] } : { headers: [['etag', '"v1"'], ['cache-control', 'max-age=0']], body: 'etagged' })));
    expect((await get('/etag')).headers['dcdn-cache']).toBe('MISS');
    // Stale at once (max-age=0): the handler is asked with the stored validator and says 304.
    const again = await get('/etag');
    expect([again.status, again.body.toString(), again.headers['dcdn-cache']]).toEqual([200, 'etagged', 'HIT']);
    expect(seen[1]!.headers['if-none-match']).toBe('"v1"');
    // The client's own validator: 304 from the cache (after the handler confirmed the entry).
    const conditional = await get('/etag', { 'if-none-match': '"v1"' });
    expect(conditional.status).toBe(304);
  });

  it('serves a fresh entry 304 when the client already has it', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => ({ headers: [['etag', 'W/"abc"'], ['cache-control', 'max-age=60']], body: 'body' })));
    await get('/cond');
    const r = await get('/cond', { 'if-none-match': '"abc"' });
    expect([r.status, r.headers['dcdn-cache'], r.body.length]).toEqual([304, 'HIT', 0]);
    expect(seen.length).toBe(1);
  });

  it('serves stale while exactly one background revalidation runs', async () => {
    const seen: Seen[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await net.addHost('h', host(seen, async () => {
      if (seen.length === 2) await gate;
      return { headers: [['cache-control', 'max-age=0, stale-while-revalidate=60']], body: `v${seen.length}` };
    }));
    const stores = ingress.cache.stats.stores;
    expect((await get('/swr')).headers['dcdn-cache']).toBe('MISS');
    const stale = await Promise.all(Array.from({ length: 20 }, () => get('/swr')));
    for (const r of stale) expect([r.body.toString(), r.headers['dcdn-cache']]).toEqual(['v1', 'STALE']);
    await until(() => seen.length === 2);
    const more = await Promise.all(Array.from({ length: 20 }, () => get('/swr')));
    for (const r of more) expect(r.headers['dcdn-cache']).toBe('STALE');
    expect(seen.length).toBe(2);
    release();
    await until(() => ingress.cache.stats.stores === stores + 2);
    expect((await get('/swr')).body.toString()).toBe('v2');
  });

  it('serves a stale response when the handler fails, within stale-if-error', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => (seen.length === 1 ? { headers: [['cache-control', 'max-age=0, stale-if-error=60'], ['etag', '"e"']], body: 'good' } : { status: 500, body: 'broken' })));
    expect((await get('/sie')).body.toString()).toBe('good');
    const r = await get('/sie');
    expect([r.status, r.body.toString(), r.headers['dcdn-cache']]).toEqual([200, 'good', 'STALE']);
  });

  it('passes other methods through as BYPASS, and a successful POST invalidates the URL', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => ({ headers: [['cache-control', 'max-age=60']], body: 'p' })));
    await get('/post');
    expect((await get('/post')).headers['dcdn-cache']).toBe('HIT');
    expect((await get('/post', {}, 'POST')).headers['dcdn-cache']).toBe('BYPASS');
    expect((await get('/post')).headers['dcdn-cache']).toBe('MISS');
    expect((await get('/post', { range: 'bytes=0-0' })).headers['dcdn-cache']).toBe('BYPASS');
  });

  it('answers HEAD from a stored GET', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => ({ headers: [['cache-control', 'max-age=60']], body: 'head me' })));
    await get('/head');
    const r = await get('/head', {}, 'HEAD');
    expect([r.status, r.headers['dcdn-cache'], r.headers['content-length'], r.body.length]).toEqual([200, 'HIT', '7', 0]);
    expect(seen.length).toBe(1);
  });

  it('streams a body over the per-entry cap through without storing it', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => ({ headers: [['cache-control', 'max-age=60']], body: Buffer.alloc(300 * 1024, 7) })));
    for (let i = 0; i < 2; i++) {
      const r = await get('/big');
      expect([r.body.length, r.headers['dcdn-cache']]).toEqual([300 * 1024, 'MISS']);
    }
    expect(seen.length).toBe(2);
  });

  // The 10,000-object run is end to end (e2e-cache.test.ts); here a fifth of it, for speed.
  it('stays within its size while 2,000 distinct 64 KiB objects pass through', async () => {
    const seen: Seen[] = [];
    const body = Buffer.alloc(64 * 1024, 1);
    await net.addHost('h', host(seen, () => ({ headers: [['cache-control', 'max-age=600']], body })));
    let peak = 0;
    for (let i = 0; i < 2_000; i += 50) {
      const replies = await Promise.all(Array.from({ length: 50 }, (_, j) => get(`/obj/${i + j}`)));
      for (const r of replies) expect(r.body.length).toBe(body.length);
      peak = Math.max(peak, ingress.cache.store.bytes);
    }
    expect(peak).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(ingress.cache.store.evictions).toBeGreaterThan(1900);
  }, 60_000);

  it('purges an app (or a prefix of it) for an operator, and refuses anyone else', async () => {
    const seen: Seen[] = [];
    await net.addHost('h', host(seen, () => ({ headers: [['cache-control', 'max-age=60']], body: 'purge me' })));
    await get('/a/1');
    await get('/b/1');
    const denied = await fetch(`${ingress.url}/_dcdn/cache/purge?app=x`, { method: 'POST' });
    expect([denied.status, denied.headers.get('dcdn-error')]).toEqual([401, 'INGRESS_UNAUTHORIZED']);
    // Without a control plane the app is '' (no app routing): purge that one directly.
    expect(ingress.cache.purge('', '/a/')).toBe(1);
    expect((await get('/a/1')).headers['dcdn-cache']).toBe('MISS');
    expect((await get('/b/1')).headers['dcdn-cache']).toBe('HIT');
    const ok = await fetch(`${ingress.url}/_dcdn/cache/purge?app=hello`, { method: 'POST', headers: { authorization: 'Bearer operator-token' } });
    expect(await ok.json()).toEqual({ app: 'hello', prefix: null, purged: 0 });
  });
});
