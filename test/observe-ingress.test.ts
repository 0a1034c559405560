/**
 * What the ingress lets people see: a request id on every answer (errors and error bodies too),
 * W3C traceparent handed on to the handler, and Prometheus metrics whose counts match the
 * requests exactly, read through a strict text-format parser (test/prom-text.ts). Node hosts
 * over the real WebSocket transport, real signaling, real HTTP on port 0.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { staticToken } from '../ingress/metrics-endpoint.ts';
import { parseTraceparent } from '../ingress/request-id.ts';
import type { Stream } from '../protocol/index.ts';
import { startNodeNetwork, type NodeNetwork } from './node-network.ts';
import { parsePrometheusText, sum, type Family } from './prom-text.ts';

const METRICS_TOKEN = 'metrics-token-for-tests';
let net: NodeNetwork;

beforeAll(async () => {
  net = await startNodeNetwork({
    proxy: { headTimeoutMs: 2000 },
    metrics: { authorize: staticToken(METRICS_TOKEN), listen: { host: '127.0.0.1', port: 0 } },
    shutdownGraceMs: 500,
  });
});
afterAll(() => net.close());
afterEach(() => net.removeHosts());

interface Result {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A host that records request headers and answers with `status` and a body of `size` bytes (consuming any request body). */
function answering(status: number, seen: Array<Array<[string, string]>> = [], size = 5) {
  return (s: Stream) => {
    seen.push(s.request.headers);
    s.onreset = () => {};
    const answer = () => {
      s.respond({ status, headers: [['content-type', 'text/plain']] });
      void s.write(new Uint8Array(size).fill(97)).then(() => s.end());
    };
    if (!s.requestHasBody) return answer();
    s.ondata = (c) => s.consume(c.byteLength);
    s.onend = answer;
  };
}

const header = (headers: Array<[string, string]>, name: string) => headers.find(([n]) => n.toLowerCase() === name)?.[1];

async function scrape(): Promise<Map<string, Family>> {
  const r = await send(`${net.ingress.url}/_dcdn/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(r.body);
}

describe('request ids', () => {
  it('puts a fresh dcdn-request-id on every forwarded answer and hands the same id to the handler', async () => {
    const seen: Array<Array<[string, string]>> = [];
    await net.addHost('ids', answering(200, seen));
    const a = await send(`${net.ingress.url}/a`, { headers: { 'dcdn-request-id': 'forged-by-client' } });
    const b = await send(`${net.ingress.url}/b`);
    expect(a.status).toBe(200);
    const idA = a.headers['dcdn-request-id'];
    expect(idA).toMatch(/^[0-9a-f]{32}$/);
    expect(b.headers['dcdn-request-id']).toMatch(/^[0-9a-f]{32}$/);
    expect(b.headers['dcdn-request-id']).not.toBe(idA);
    // The client's own id is replaced, not passed on beside ours.
    expect(seen[0]!.filter(([n]) => n === 'dcdn-request-id')).toEqual([['dcdn-request-id', idA]]);
  });

  it('puts the id in the header and the JSON body of errors the ingress answers itself', async () => {
    // No host: 503 INGRESS_NO_HOST.
    const r = await send(`${net.ingress.url}/`);
    expect(r.status).toBe(503);
    const id = r.headers['dcdn-request-id'];
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.parse(r.body).error).toMatchObject({ code: 'INGRESS_NO_HOST', requestId: id });
    // An ingress endpoint that does not exist, and one fastify answers through its hooks.
    const missing = await send(`${net.ingress.url}/_dcdn/nope`);
    expect(JSON.parse(missing.body).error.requestId).toBe(missing.headers['dcdn-request-id']);
    const post = await send(`${net.ingress.url}/_dcdn/health`, { method: 'POST', body: '' });
    expect(post.status).toBe(404);
    expect(JSON.parse(post.body).error.requestId).toBe(post.headers['dcdn-request-id']);
  });

  it("gives an id even to what Node's HTTP parser rejects before there is a request", async () => {
    const u = new URL(net.ingress.url);
    const out = await new Promise<string>((resolve) => {
      const sock = connect(Number(u.port), u.hostname, () => sock.write('\x01\x02 / HTTP/1.1\r\nHost: x\r\n\r\n'));
      let text = '';
      sock.on('data', (d) => (text += d.toString('latin1')));
      sock.on('close', () => resolve(text));
      sock.on('error', () => {});
    });
    const id = /^dcdn-request-id: ([0-9a-f]{32})\r$/m.exec(out)?.[1];
    expect(id).toBeDefined();
    expect(JSON.parse(out.split('\r\n\r\n')[1]!).error.requestId).toBe(id);
  });
});

describe('W3C trace context', () => {
  it('continues a valid incoming traceparent: same trace, the ingress as the parent, sampled flag kept', async () => {
    const seen: Array<Array<[string, string]>> = [];
    await net.addHost('trace', answering(200, seen));
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const r = await send(`${net.ingress.url}/`, { headers: { traceparent: incoming, tracestate: 'vendor=abc' } });
    expect(r.status).toBe(200);
    const forwarded = parseTraceparent(header(seen[0]!, 'traceparent'));
    expect(forwarded).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', flags: '01' });
    expect(forwarded!.parentId).not.toBe('00f067aa0ba902b7');
    expect(header(seen[0]!, 'tracestate')).toBe('vendor=abc');
    expect(seen[0]!.filter(([n]) => n === 'traceparent')).toHaveLength(1);
  });

  it.each([
    ['absent', undefined],
    ['malformed', 'not-a-traceparent'],
    ['with an all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['of the forbidden version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
  ])('starts a new trace, whose id is the request id, when the traceparent is %s', async (_what, incoming) => {
    const seen: Array<Array<[string, string]>> = [];
    await net.addHost('fresh', answering(200, seen));
    const r = await send(`${net.ingress.url}/`, { headers: incoming ? { traceparent: incoming, tracestate: 'vendor=abc' } : {} });
    const forwarded = parseTraceparent(header(seen[0]!, 'traceparent'));
    expect(forwarded?.traceId).toBe(r.headers['dcdn-request-id']);
    // tracestate belongs to the trace the client started; without a valid one it is dropped.
    expect(header(seen[0]!, 'tracestate')).toBeUndefined();
  });
});

describe('Prometheus metrics', () => {
  it('counts exactly N requests, with a histogram whose count grew by N', async () => {
    await net.addHost('counted', answering(200, [], 1000));
    const before = await scrape();
    const N = 7;
    for (let i = 0; i < N; i++) {
      const r = await send(`${net.ingress.url}/n/${i}`, i < 2 ? { method: 'POST', body: 'x'.repeat(300) } : {});
      expect(r.status).toBe(200);
    }
    const after = await scrape();
    const grew = (family: string, match: Record<string, string> = {}, sample?: string) => sum(after, family, match, sample) - sum(before, family, match, sample);
    expect(after.get('dcdn_http_requests_total')?.type).toBe('counter');
    expect(grew('dcdn_http_requests_total')).toBe(N);
    expect(grew('dcdn_http_requests_total', { app: '-', status: '200', transport: 'websocket' })).toBe(N);
    expect(after.get('dcdn_http_request_duration_seconds')?.type).toBe('histogram');
    expect(grew('dcdn_http_request_duration_seconds', { app: '-', transport: 'websocket' }, 'dcdn_http_request_duration_seconds_count')).toBe(N);
    expect(grew('dcdn_http_request_duration_seconds', { le: '+Inf' }, 'dcdn_http_request_duration_seconds_bucket')).toBe(N);
    expect(grew('dcdn_http_response_body_bytes_total')).toBe(N * 1000);
    expect(grew('dcdn_http_request_body_bytes_total')).toBe(2 * 300);
    expect(sum(after, 'dcdn_hosts', { state: 'serving', kind: 'operator', transport: 'websocket' })).toBe(1);
    expect(sum(after, 'dcdn_http_requests_in_flight')).toBe(0);
    expect(sum(after, 'dcdn_sessions_opened_total', { transport: 'websocket' })).toBeGreaterThanOrEqual(1);
    // Process metrics come along, under the same prefix.
    expect(after.get('dcdn_process_resident_memory_bytes')?.type).toBe('gauge');
    // No label grows with the traffic: no URL, no host id, no request id.
    for (const f of after.values()) for (const s of f.samples) expect(Object.keys(s.labels).every((l) => ['app', 'status', 'transport', 'code', 'reason', 'state', 'kind', 'op', 'outcome', 'le', 'quantile', 'version', 'major', 'minor', 'patch', 'space', 'type', 'result', 'segment', 'mode', 'direction', 'limit'].includes(l)), `${s.name} ${JSON.stringify(s.labels)}`).toBe(true);
  });

  it('counts failures by status and code, with transport none when no host was tried', async () => {
    const before = await scrape();
    const r = await send(`${net.ingress.url}/`);
    expect(r.status).toBe(503);
    await net.addHost('failing', answering(500));
    expect((await send(`${net.ingress.url}/`)).status).toBe(500);
    const after = await scrape();
    const grew = (family: string, match: Record<string, string>) => sum(after, family, match) - sum(before, family, match);
    expect(grew('dcdn_http_requests_total', { status: '503', transport: 'none' })).toBe(1);
    expect(grew('dcdn_http_errors_total', { code: 'INGRESS_NO_HOST' })).toBe(1);
    // A 500 the app chose is an answer, not a dcdn error.
    expect(grew('dcdn_http_requests_total', { status: '500', transport: 'websocket' })).toBe(1);
    expect(grew('dcdn_http_errors_total', {})).toBe(1);
  });

  it('refuses /_dcdn/metrics without the token, with a code', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: METRICS_TOKEN }] as Array<Record<string, string>>) {
      const r = await send(`${net.ingress.url}/_dcdn/metrics`, { headers });
      expect(r.status).toBe(401);
      expect(r.headers['dcdn-error']).toBe('INGRESS_UNAUTHORIZED');
      expect(r.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('serves /metrics without a token on the separate --metrics-listen address, and nothing else there', async () => {
    const url = net.ingress.metricsUrl!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const r = await send(url);
    expect(r.status).toBe(200);
    expect(parsePrometheusText(r.body).has('dcdn_http_requests_total')).toBe(true);
    expect((await send(url.replace(/\/metrics$/, '/'))).status).toBe(404);
  });
});

describe('the test parser is strict', () => {
  it.each([
    ['a value that is not a float', '# TYPE a counter\na 1,5\n'],
    ['a bad escape in a label value', '# TYPE a counter\na{x="\\q"} 1\n'],
    ['a duplicate series', '# TYPE a counter\na{x="1"} 1\na{x="1"} 2\n'],
    ['a sample of no declared family', '# TYPE a counter\nb 1\n'],
    ['buckets that are not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 3\nh_sum 1\nh_count 3\n'],
    ['+Inf bucket unlike _count', '# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_sum 1\nh_count 4\n'],
    ['no final newline', '# TYPE a counter\na 1'],
  ])('rejects %s', (_what, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});
