/**
 * What the ingress refuses before it forwards, what URL a handler sees, and when a response is
 * complete (issue 15, items 1-3): the wire's limits answered with a prompt 414/431 instead of a
 * head the host's decoder drops; request targets and Host headers that could make a handler see
 * another authority; a response that reached its Content-Length while its stream stays open.
 * Node hosts over the real WebSocket transport, real signaling, real HTTP on port 0.
 */
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import fc from 'fast-check';
import { ERRORS, isErrorCode, LIMITS, type Stream, type StreamError } from '../protocol/index.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

let net: NodeNetwork;
let ingress: Ingress;

beforeAll(async () => {
  net = await startNodeNetwork({
    // Operator limits above the wire's, so the wire's own limits are what is tested.
    proxy: { headTimeoutMs: 20_000, maxUrlLength: 20_000, maxHeaderBytes: 100_000, lengthEndGraceMs: 2000 },
    session: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1000 },
    shutdownGraceMs: 1000,
  });
  ingress = net.ingress;
});

afterAll(() => net.close());
afterEach(() => net.removeHosts());

type Seen = Array<{ url: string; headers: Array<[string, string]> }>;

/** A host that records each request and answers 200 `ok`. */
function recorder(seen: Seen) {
  return (s: Stream) => {
    seen.push({ url: s.request.url, headers: s.request.headers });
    s.onreset = () => {};
    s.respond({ status: 200, headers: [['content-length', '2']] });
    void s.write(new TextEncoder().encode('ok')).then(() => s.end());
  };
}

/** Writes raw bytes and returns everything the server sends until it closes (or `ms` passes). */
function raw(bytes: string | Buffer, ms = 5000): Promise<string> {
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

function parseRaw(out: string): { status: number; code: string | undefined } {
  const [head = ''] = out.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), code: /^dcdn-error: (.+)$/im.exec(head)?.[1]?.trim() };
}

const request = (line: string, headers: string[] = ['Host: x']) => `${line} HTTP/1.1\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`;

describe("the wire's limits are checked before anything is forwarded", () => {
  const lines = (n: number, size = 30) => Array.from({ length: n }, (_, i) => `X-H${i}: ${'v'.repeat(size)}`);
  it.each([
    ['260 headers of 10 KB in all (under the byte limit, over the wire header count)', request('GET /', ['Host: x', ...lines(259)]), 431, 'INGRESS_HEADERS_TOO_LARGE'],
    ['254 headers that X-Forwarded-* would take past 256', request('GET /', ['Host: x', ...lines(253)]), 431, 'INGRESS_HEADERS_TOO_LARGE'],
    ['a header value over 16 KiB', request('GET /', ['Host: x', `X-Big: ${'v'.repeat(LIMITS.headerLength + 1)}`]), 431, 'INGRESS_HEADERS_TOO_LARGE'],
    ['a head over 64 K characters in all', request('GET /', ['Host: x', ...lines(5, 15_000)]), 431, 'INGRESS_HEADERS_TOO_LARGE'],
    ['a URL whose forwarded form is over 16 KiB', request(`GET /${'a'.repeat(LIMITS.urlLength)}`), 414, 'INGRESS_URL_TOO_LONG'],
    ['a URL that percent-encoding takes past 16 KiB', request(`GET /?${'"'.repeat(6000)}`), 414, 'INGRESS_URL_TOO_LONG'],
  ])('%s: %s %s, no stream opened', async (_name, bytes, status, code) => {
    const seen: Seen = [];
    const host = await net.addHost('limits', recorder(seen));
    const r = parseRaw(await raw(bytes));
    expect(r).toEqual({ status, code });
    expect(seen).toHaveLength(0);
    expect(host.sessions[0]!.stats.framesIn).toBeGreaterThan(0);
    expect(host.sessions[0]!.stats.streamErrors).toBe(0);
  });

  it('answers a response head the ingress cannot decode with a prompt 502, and tells the host', async () => {
    let reset: (e: StreamError) => void;
    const hostSaw = new Promise<StreamError>((r) => (reset = r));
    await net.addHost('many-headers', (s) => {
      s.onreset = reset;
      s.respond({ status: 200, headers: Array.from({ length: LIMITS.headerCount + 1 }, (_, i): [string, string] => [`x-h${i}`, 'v']) });
    });
    const r = parseRaw(await raw(request('GET /')));
    expect(r).toEqual({ status: 502, code: 'INGRESS_BAD_RESPONSE' });
    expect((await hostSaw).code).toBe('PROTO_FRAME_INVALID');
  });
});

describe('the URL a handler sees is the request’s own scheme, Host and path', () => {
  it.each([
    ['a path that looks scheme-relative', 'GET //evil.example/admin', 'x', 'http://x//evil.example/admin'],
    ['dot segments, resolved before routing', 'GET /a/b/../../c/./d', 'x', 'http://x/c/d'],
    ['percent-encoded dot segments', 'GET /a/%2e%2e/b', 'x', 'http://x/b'],
    ['dot segments that climb above the root', 'GET /../../etc/passwd', 'x', 'http://x/etc/passwd'],
    ['an absolute-form target naming the Host', 'GET http://x/p?q=1', 'x', 'http://x/p?q=1'],
    ['an absolute-form target naming the Host with another case and no path', 'GET HTTP://X', 'x', 'http://x/'],
    ['an IPv6 Host with a port', 'GET /v6', '[::1]:8080', 'http://[::1]:8080/v6'],
    ['a Host with a trailing dot and an upper-case name', 'GET /t', 'Example.COM.', 'http://example.com./t'],
  ])('%s', async (_name, line, host, url) => {
    const seen: Seen = [];
    await net.addHost('targets', recorder(seen));
    const r = parseRaw(await raw(request(line, [`Host: ${host}`])));
    expect(r.status).toBe(200);
    expect(seen.map((s) => s.url)).toEqual([url]);
  });

  it.each([
    ['an absolute-form target for another authority', 'GET http://evil.example/admin', 'x', 'INGRESS_BAD_REQUEST'],
    ['an absolute-form target with userinfo', 'GET http://user@x/', 'x', 'INGRESS_BAD_REQUEST'],
    ['an absolute-form target with another scheme', 'GET ftp://x/file', 'x', 'INGRESS_BAD_REQUEST'],
    ['an authority-form target without CONNECT', 'GET x:80', 'x', 'INGRESS_BAD_REQUEST'],
    ['an asterisk-form target', 'OPTIONS *', 'x', 'INGRESS_BAD_REQUEST'],
    ['a backslash in the target', 'GET /\\evil.example/x', 'x', 'INGRESS_BAD_REQUEST'],
    ['a Host with userinfo', 'GET /', 'user:pw@x', 'INGRESS_BAD_HOST'],
    ['a Host with a path', 'GET /', 'x/admin', 'INGRESS_BAD_HOST'],
    ['a Host with a query', 'GET /', 'x?a=1', 'INGRESS_BAD_HOST'],
    ['a Host with a fragment', 'GET /', 'x#f', 'INGRESS_BAD_HOST'],
    ['a Host with a space', 'GET /', 'x y', 'INGRESS_BAD_HOST'],
    ['a Host with a port past 65535', 'GET /', 'x:65536', 'INGRESS_BAD_HOST'],
    ['a Host with a port that is not a number', 'GET /', 'x:http', 'INGRESS_BAD_HOST'],
    ['a Host with a percent-encoded name', 'GET /', 'e%76il', 'INGRESS_BAD_HOST'],
    ['a malformed IPv6 Host', 'GET /', '[::g]', 'INGRESS_BAD_HOST'],
    ['an empty Host', 'GET /', '', 'INGRESS_BAD_HOST'],
  ])('%s (%s, Host %j): 400 %s, decided at the ingress', async (_name, line, host, code) => {
    const seen: Seen = [];
    await net.addHost('refused', recorder(seen));
    const r = parseRaw(await raw(request(line, [`Host: ${host}`])));
    expect(r).toEqual({ status: 400, code });
    expect(seen).toHaveLength(0);
  });
});

describe('a response is complete when its declared length has arrived', () => {
  /** GETs `path` on `agent`; resolves with status, body and whether the socket was reused. */
  function get(agent: Agent, path: string): Promise<{ status: number; body: string; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${ingress.url}${path}`, { agent }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body, reused: req.reusedSocket }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('ends the client response, frees the slot, keeps the connection, and cancels the stream', async () => {
    const resets: StreamError[] = [];
    await net.addHost('never-ends', (s) => {
      s.onreset = (e) => resets.push(e);
      if (s.request.url.endsWith('/open')) {
        s.respond({ status: 200, headers: [['content-length', '5']] });
        void s.write(new TextEncoder().encode('hello')); // and never s.end()
      } else {
        s.respond({ status: 200, headers: [['content-length', '4']] });
        void s.write(new TextEncoder().encode('next')).then(() => s.end());
      }
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(await get(agent, '/open')).toEqual({ status: 200, body: 'hello', reused: false });
      expect(ingress.pool.list()[0]!.inFlight).toBe(0);
      expect(await get(agent, '/second')).toEqual({ status: 200, body: 'next', reused: true });
      await until(() => resets.length === 1, 10_000);
      expect(resets[0]!.code).toBe('PROTO_CANCELLED');
      expect(ingress.pool.list()[0]!.inFlight).toBe(0);
      await until(() => net.hosts[0]!.sessions[0]!.openStreams === 0);
    } finally {
      agent.destroy();
    }
  });

  it('does the same for Content-Length: 0 and for a 204 whose stream stays open', async () => {
    await net.addHost('empty-open', (s) => {
      s.onreset = () => {};
      s.respond({ status: s.request.url.endsWith('/204') ? 204 : 200, headers: s.request.url.endsWith('/204') ? [] : [['content-length', '0']] });
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(await get(agent, '/zero')).toEqual({ status: 200, body: '', reused: false });
      expect(await get(agent, '/204')).toEqual({ status: 204, body: '', reused: true });
      expect(ingress.pool.list()[0]!.inFlight).toBe(0);
    } finally {
      agent.destroy();
    }
  });

  it('still treats bytes past the declared length as the host’s error, without forwarding them', async () => {
    let hostReset: (e: StreamError) => void;
    const hostSaw = new Promise<StreamError>((r) => (hostReset = r));
    await net.addHost('too-long', (s) => {
      s.onreset = hostReset;
      s.respond({ status: 200, headers: [['content-length', '5']] });
      void s.write(new TextEncoder().encode('hello')).then(() => s.write(new TextEncoder().encode(' and more'))).catch(() => {});
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(await get(agent, '/long')).toEqual({ status: 200, body: 'hello', reused: false });
      expect((await hostSaw).code).toBe('INGRESS_BAD_RESPONSE');
    } finally {
      agent.destroy();
    }
  });
});

describe('any request head is either forwarded as itself or refused with a coded 4xx', () => {
  const piece = fc.constantFrom('/', '//', '.', '..', '%2e', '\\', '@', ':', '?', '#', 'a', 'evil.example', 'http://', '*', '%', '=');
  const rare = fc.constantFrom(' ', '\u00e9', '\t');
  const targetArb = fc.oneof(
    { weight: 4, arbitrary: fc.array(piece, { maxLength: 8 }).map((p) => `/${p.join('')}`) },
    { weight: 1, arbitrary: fc.array(fc.oneof({ weight: 6, arbitrary: piece }, { weight: 1, arbitrary: rare }), { maxLength: 8 }).map((p) => p.join('')) },
  );
  const hostArb = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('x', 'x:8080', '[::1]', 'a.b', 'X.example.') },
    { weight: 1, arbitrary: fc.array(fc.constantFrom('x', '.', ':', '80', '@', '/', '?', ' ', '[', ']', '%'), { maxLength: 5 }).map((p) => p.join('')) },
  );
  const headersArb = fc.record({ count: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 250, max: 262 })), long: fc.option(fc.integer({ min: LIMITS.headerLength - 2, max: LIMITS.headerLength + 2 }), { nil: undefined }) });

  type Head = [method: string, target: string, host: string, headers: { count: number; long: number | undefined }];

  /** The property: forwarded with the Host's authority and within the wire's limits, or a coded 4xx. */
  async function check(seen: Seen, [method, target, host, { count, long }]: Head): Promise<void> {
    seen.length = 0;
    const lines = [`Host: ${host}`, ...Array.from({ length: count }, (_, i) => `X-H${i}: v`)];
    if (long !== undefined) lines.push(`X-Long: ${'v'.repeat(long)}`);
    const { status, code } = parseRaw(await raw(Buffer.from(request(`${method} ${target}`, lines), 'latin1')));
    if (status === 200) {
      expect(seen).toHaveLength(1);
      // A field value's surrounding spaces and tabs are not part of it (RFC 9110 §5.5).
      expect(new URL(seen[0]!.url).host).toBe(new URL(`http://${host.replace(/^[ \t]+|[ \t]+$/g, '')}/`).host);
      expect(seen[0]!.headers.length).toBeLessThanOrEqual(LIMITS.headerCount);
      return;
    }
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    expect(isErrorCode(code)).toBe(true);
    expect(ERRORS[code as keyof typeof ERRORS].status).toBe(status);
    expect(seen).toHaveLength(0);
  }

  it('never a 5xx, never a host seeing another authority, every refusal coded', async () => {
    const seen: Seen = [];
    await net.addHost('fuzzed', recorder(seen));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'OPTIONS', 'PROPFIND'), targetArb, hostArb, headersArb, (...head) => check(seen, head)),
      { numRuns: 100 },
    );
  }, 60_000);

  /**
   * Counterexamples the property found, kept as literals. Each was found by running it against
   * the proxy.ts before this branch (commit e5ec1f1): the first got 502 (the tab refused the
   * head: 254 headers plus X-Forwarded-* are 257), the others reached the handler as
   * http://a/ and http://evil.example/.
   */
  const CORPUS: Head[] = [
    ['GET', '/', 'x', { count: 253, long: undefined }],
    ['GET', '//a', 'x', { count: 0, long: undefined }],
    ['GET', '//evil.example', 'x', { count: 0, long: undefined }],
    // Found in CI (seed 511131944): a Host with trailing space is the Host without it.
    ['GET', '/', 'x ', { count: 0, long: undefined }],
  ];
  it.each(CORPUS)('corpus: %s %s (Host %s, %o)', async (...head) => {
    const seen: Seen = [];
    await net.addHost('corpus', recorder(seen));
    await check(seen, head);
  });
});
