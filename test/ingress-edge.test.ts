/**
 * The ingress's HTTP edge: every answer it gives itself carries a code (odd methods, requests
 * Node's parser or fastify would answer bare), 503 when hosts are busy, X-Forwarded-* from
 * trusted and untrusted peers, and what `/_dcdn/health` reports. Node hosts over the real
 * WebSocket transport, real signaling, real HTTP on port 0.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIngress, type Ingress } from '../ingress/index.ts';
import { trustedProxyMatcher } from '../ingress/http-headers.ts';
import type { Stream } from '../protocol/index.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

let net: NodeNetwork;
let ingress: Ingress;
let signalUrl: string;
/** The second loopback address, configured as a trusted proxy; 127.0.0.1 is an ordinary client. */
const PROXY_ADDRESS = '127.0.0.2';

beforeAll(async () => {
  net = await startNodeNetwork({
    proxy: { headTimeoutMs: 2000 },
    pool: { maxInFlightPerHost: 1 },
    trustedProxies: [`${PROXY_ADDRESS}/32`],
    session: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1000 },
    shutdownGraceMs: 1000,
  });
  ({ ingress, signalUrl } = net);
});

afterAll(() => net.close());
afterEach(() => net.removeHosts());

const addHost = (name: string, onstream: (s: Stream) => void) => net.addHost(name, onstream);

/** A host that records each request (method, URL, headers, body) and answers 200 with `method url`. */
function recorder(seen: Array<{ method: string; url: string; headers: Array<[string, string]>; body: string }>) {
  return (s: Stream) => {
    const entry = { method: s.request.method, url: s.request.url, headers: s.request.headers, body: '' };
    seen.push(entry);
    s.onreset = () => {};
    const answer = () => {
      s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
      void s.write(new TextEncoder().encode(`${entry.method} ${new URL(entry.url).pathname}`)).then(() => s.end());
    };
    if (!s.requestHasBody) return answer();
    s.ondata = (c) => {
      entry.body += Buffer.from(c).toString();
      s.consume(c.byteLength);
    };
    s.onend = answer;
  };
}

interface Result {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${ingress.url}${path}`, { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes raw bytes and returns everything the server sends until it closes (or `ms` passes). */
function raw(bytes: string, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const u = new URL(ingress.url);
    const sock = connect(Number(u.port), u.hostname, () => sock.write(bytes));
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(out);
    }, ms);
    sock.on('data', (d) => (out += d.toString('latin1')));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.on('error', () => {});
  });
}

/** Status line and `dcdn-error` of a raw response. */
function parseRaw(out: string): { status: number; code: string | undefined; body: string } {
  const [head = '', body = ''] = out.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), code: /^dcdn-error: (.+)$/im.exec(head)?.[1]?.trim(), body };
}

describe('every answer of the ingress itself carries a code', () => {
  it.each(['PROPFIND', 'MKCOL', 'PURGE', 'REPORT', 'SEARCH', 'QUERY', 'LOCK'])('forwards %s to the app, like any reverse proxy', async (method) => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('methods', recorder(seen));
    const r = await send('/dav/file', { method, headers: { 'content-type': 'application/xml' }, body: '<propfind/>' });
    expect(r.status).toBe(200);
    expect(r.body).toBe(`${method} /dav/file`);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe(method);
    expect(seen[0]!.body).toBe('<propfind/>');
  });

  it.each([
    ['TRACE (reflects credentials; a Web Request refuses it)', 'TRACE / HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['TRACK (unknown to the parser)', 'TRACK / HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a made-up method token', 'BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['CONNECT (the ingress is not a forward proxy)', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'],
  ])('answers 501 INGRESS_NOT_IMPLEMENTED for %s and forwards nothing', async (_what, bytes) => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('refuser', recorder(seen));
    const r = parseRaw(await raw(bytes));
    expect(r.status).toBe(501);
    expect(r.code).toBe('INGRESS_NOT_IMPLEMENTED');
    expect(JSON.parse(r.body).error.code).toBe('INGRESS_NOT_IMPLEMENTED');
    expect(seen).toHaveLength(0);
  });

  it('forwards a WebSocket upgrade to the app with `upgrade: websocket`, and its non-101 answer as it is', async () => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('ws-refuser', recorder(seen));
    const r = parseRaw(await raw('GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'));
    expect(r.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers).toContainEqual(['upgrade', 'websocket']);
  });

  it.each([
    ['an HTTP/1.1 request without Host (Node would answer a bare 400)', 'GET / HTTP/1.1\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['bytes that are not HTTP', '\x01\x02\x03 / HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['a request line claiming HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['an asterisk-form target', 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['an Expect other than 100-continue (Node would answer a bare 417)', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n', 417, 'INGRESS_EXPECTATION_FAILED'],
    ['a WebSocket upgrade without a Sec-WebSocket-Key', 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['a WebSocket upgrade of another version', 'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 400, 'INGRESS_BAD_REQUEST'],
    ['an unknown /_dcdn/ endpoint', 'GET /_dcdn/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 404, 'INGRESS_NOT_FOUND'],
    ['the host endpoint without a WebSocket upgrade (fastify would answer a bare 404)', 'GET /_dcdn/host-ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 404, 'INGRESS_NOT_FOUND'],
    ['HEAD on the host endpoint', 'HEAD /_dcdn/host-ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 404, 'INGRESS_NOT_FOUND'],
    ['POST to the health endpoint', 'POST /_dcdn/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 404, 'INGRESS_NOT_FOUND'],
  ])('answers %s with a code', async (_what, bytes, status, code) => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('coded', recorder(seen));
    const r = parseRaw(await raw(bytes));
    expect(r.status).toBe(status);
    expect(r.code).toBe(code);
    expect(seen).toHaveLength(0);
  });

  it('forwards an HTTP/1.0 request without Host, a URL fastify cannot decode, and a body with a malformed Content-Type', async () => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('lenient', recorder(seen));
    expect(parseRaw(await raw('GET /old HTTP/1.0\r\n\r\n')).status).toBe(200);
    const bad = parseRaw(await raw('GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    expect(bad.status).toBe(200);
    const typed = parseRaw(await raw('POST /t HTTP/1.1\r\nHost: x\r\nContent-Type: ;;;\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab'));
    expect(typed.status).toBe(200);
    expect(seen.map((s) => new URL(s.url).pathname)).toEqual(['/old', '/%zz', '/t']);
    expect(seen[2]!.body).toBe('ab');
  });

  it('serves a bodyless Upgrade: h2c request (curl --http2) as plain HTTP/1.1 and closes the connection', async () => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('h2c', recorder(seen));
    const out = await raw('GET /h2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    expect(parseRaw(out).status).toBe(200);
    expect(out).toMatch(/\r\nconnection: close\r\n/i);
    expect(out).toMatch(/\r\n\r\n7\r\nGET \/h2\r\n0\r\n\r\n$/); // chunked, complete
    const names = seen[0]!.headers.map(([n]) => n);
    expect(names).not.toContain('upgrade');
    expect(names).not.toContain('http2-settings');
  });
});

describe('503 when every host is at its limit', () => {
  it('answers 503 INGRESS_HOSTS_BUSY with Retry-After, and serves again once a slot frees', async () => {
    const held: Stream[] = [];
    await addHost('one-slot', (s) => {
      s.onreset = () => {};
      held.push(s);
    });
    const first = send('/held');
    await until(() => held.length === 1);
    const busy = await send('/more');
    expect(busy.status).toBe(503);
    expect(busy.headers['dcdn-error']).toBe('INGRESS_HOSTS_BUSY');
    expect(busy.headers['retry-after']).toBe('1');
    expect(JSON.parse(busy.body).error).toMatchObject({ code: 'INGRESS_HOSTS_BUSY', status: 503 });
    expect(held).toHaveLength(1); // the refused request never reached the host
    held[0]!.respond({ status: 204, headers: [] }, true);
    expect((await first).status).toBe(204);
    net.behave('one-slot', (s) => {
      s.onreset = () => {};
      s.respond({ status: 204, headers: [] }, true);
    });
    expect((await send('/again')).status).toBe(204);
  });
});

describe('X-Forwarded-* and trusted proxies', () => {
  const header = (h: Array<[string, string]>, name: string) => h.filter(([n]) => n === name).map(([, v]) => v);

  it("replaces an untrusted client's X-Forwarded-For/-Proto/-Host and Forwarded with what the socket says", async () => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('xff', recorder(seen));
    await send('/', { headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'bank.example', forwarded: 'for=6.6.6.6' } });
    const h = seen[0]!.headers;
    expect(header(h, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(header(h, 'x-forwarded-proto')).toEqual(['http']);
    expect(header(h, 'x-forwarded-host')).toEqual([new URL(ingress.url).host]);
    expect(header(h, 'forwarded')).toEqual([]);
  });

  it("appends to a configured trusted proxy's X-Forwarded-For and believes its -Proto and -Host", async () => {
    const seen: Parameters<typeof recorder>[0] = [];
    await addHost('xff-trusted', recorder(seen));
    await send('/', {
      localAddress: PROXY_ADDRESS,
      headers: { 'x-forwarded-for': '203.0.113.9, 10.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'www.example.org' },
    });
    const h = seen[0]!.headers;
    expect(header(h, 'x-forwarded-for')).toEqual([`203.0.113.9, 10.0.0.1, ${PROXY_ADDRESS}`]);
    expect(header(h, 'x-forwarded-proto')).toEqual(['https']);
    expect(header(h, 'x-forwarded-host')).toEqual(['www.example.org']);
    // Without X-Forwarded-* of its own, the proxy is the client.
    await send('/', { localAddress: PROXY_ADDRESS });
    expect(header(seen[1]!.headers, 'x-forwarded-for')).toEqual([PROXY_ADDRESS]);
  });

  it('matches trusted proxies by address or CIDR range, IPv4-mapped peers included', () => {
    const trusted = trustedProxyMatcher(['10.0.0.0/8', '192.0.2.7', '::1', 'fd00::/8']);
    expect(['10.1.2.3', '::ffff:10.9.9.9', '192.0.2.7', '::1', 'fd12::3'].map(trusted)).toEqual([true, true, true, true, true]);
    expect(['11.0.0.1', '192.0.2.8', '::2', 'fe80::1', '', 'not-an-ip'].map(trusted)).toEqual([false, false, false, false, false, false]);
    expect(trustedProxyMatcher([])('127.0.0.1')).toBe(false);
  });

  it('refuses a malformed trusted-proxy entry at startup', () => {
    expect(() => createIngress({ signalUrl, token: 'x', trustedProxies: ['10.0.0.0/33'] })).toThrow(/not an IP address or CIDR range/);
    expect(() => createIngress({ signalUrl, token: 'x', trustedProxies: ['proxy.local'] })).toThrow(/not an IP address or CIDR range/);
  });
});

describe('/_dcdn/health', () => {
  it('lists each host with its transport and counters, and the ingress totals', async () => {
    await addHost('counted', (s) => {
      s.onreset = () => {};
      s.respond({ status: 200, headers: [['content-length', '2']] });
      void s.write(new TextEncoder().encode('ok')).then(() => s.end());
    });
    for (let i = 0; i < 3; i++) expect((await send(`/n${i}`)).status).toBe(200);
    const r = await send('/_dcdn/health');
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    const health = JSON.parse(r.body);
    expect(health).toMatchObject({ ok: true, draining: false, signaling: true, inFlight: 0, kv: null });
    expect(health.hosts).toHaveLength(1);
    const [h] = health.hosts;
    expect(h).toMatchObject({ id: 'node-counted', name: 'counted', transport: 'websocket', inFlight: 0, served: 3, penalised: false, penalisedForMs: 0, failures: 0, penaltyLevel: 0, userAgent: 'node-test-host' });
    expect(Date.parse(h.since)).toBeLessThanOrEqual(Date.now());
    expect(h.stats.framesOut).toBeGreaterThan(0);
    expect(h.stats.framesIn).toBeGreaterThan(0);
    expect(h.stats.bytesIn).toBeGreaterThan(0);
  });

  it('reports ok: false with no host', async () => {
    const health = JSON.parse((await send('/_dcdn/health')).body);
    expect(health).toMatchObject({ ok: false, hosts: [] });
  });
});
