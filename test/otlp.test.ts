/**
 * `--otlp`: the ingress exports a SERVER span per sampled request to an OpenTelemetry collector
 * (OTLP/HTTP JSON), in the trace the handler's traceparent names. The collector here is a real
 * HTTP server that records what it is sent; a collector that is down costs dropped spans, not
 * requests.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OtlpExporter, otlpPayload } from '../ingress/otlp.ts';
import { startNodeNetwork, type NodeNetwork } from './node-network.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status: { code: number };
}

let collector: Server;
let collectorUrl = '';
const received: OtlpSpan[] = [];
const waiters: Array<() => void> = [];
let net: NodeNetwork;

beforeAll(async () => {
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const parsed = JSON.parse(body) as { resourceSpans: Array<{ resource: unknown; scopeSpans: Array<{ spans: OtlpSpan[] }> }> };
      for (const rs of parsed.resourceSpans) for (const ss of rs.scopeSpans) received.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
  net = await startNodeNetwork({ otlp: { url: collectorUrl, intervalMs: 20 } });
});
afterAll(async () => {
  await net.close();
  await new Promise((r) => collector.close(r));
});

function spanFor(requestId: string): Promise<OtlpSpan> {
  return new Promise((resolve) => {
    const check = () => {
      const hit = received.find((s) => s.attributes.some((a) => a.key === 'dcdn.request_id' && a.value.stringValue === requestId));
      if (hit) resolve(hit);
      else waiters.push(check);
    };
    check();
  });
}

const attr = (s: OtlpSpan, key: string) => s.attributes.find((a) => a.key === key)?.value;

describe('OTLP span export', () => {
  it("exports the ingress's span of a request in the client's trace, parented on the client's span", async () => {
    await net.addHost('traced', (s) => s.respond({ status: 201, headers: [] }, true));
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await fetch(`${net.ingress.url}/orders?x=1`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(res.status).toBe(201);
    const span = await spanFor(res.headers.get('dcdn-request-id')!);
    expect(span).toMatchObject({ traceId, parentSpanId: '00f067aa0ba902b7', kind: 2, status: { code: 0 } });
    expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(BigInt(span.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(span.startTimeUnixNano));
    expect(attr(span, 'http.response.status_code')).toEqual({ intValue: '201' });
    expect(attr(span, 'url.path')).toEqual({ stringValue: '/orders' });
    expect(attr(span, 'dcdn.host')).toEqual({ stringValue: 'traced' });
    await net.removeHosts();
  });

  it('starts a trace whose id is the request id when the client sent none, and marks a failure as an error', async () => {
    // No host: 503 INGRESS_NO_HOST.
    const res = await fetch(`${net.ingress.url}/nobody`);
    expect(res.status).toBe(503);
    const requestId = res.headers.get('dcdn-request-id')!;
    const span = await spanFor(requestId);
    expect(span.traceId).toBe(requestId);
    expect(span.parentSpanId).toBeUndefined();
    expect(span.status.code).toBe(2);
    expect(attr(span, 'dcdn.error_code')).toEqual({ stringValue: 'INGRESS_NO_HOST' });
  });

  it('exports nothing for a trace the client did not sample', async () => {
    const before = received.length;
    const res = await fetch(`${net.ingress.url}/quiet`, { headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' } });
    const sampled = await fetch(`${net.ingress.url}/loud`);
    await spanFor(sampled.headers.get('dcdn-request-id')!);
    expect(received.slice(before).some((s) => attr(s, 'dcdn.request_id')?.stringValue === res.headers.get('dcdn-request-id'))).toBe(false);
  });
});

describe('OtlpExporter', () => {
  it('drops and counts spans past maxQueue while the collector is unreachable, and counts the failed export', async () => {
    const exporter = new OtlpExporter({ url: 'http://127.0.0.1:9/v1/traces', maxQueue: 3, batchSize: 10, intervalMs: 60_000, timeoutMs: 2000 });
    const span = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), name: 'GET x', startMs: 1, endMs: 2, error: false, attributes: {} };
    for (let i = 0; i < 5; i++) exporter.add(span);
    expect(exporter.stats.dropped).toBe(2);
    await exporter.close();
    expect(exporter.stats).toEqual({ exported: 0, dropped: 2, failed: 3 });
  });

  it('writes times as nanosecond strings, as OTLP/JSON encodes fixed64', () => {
    const payload = otlpPayload([{ traceId: 't', spanId: 's', name: 'n', startMs: 1700000000123.5, endMs: 1700000000124, error: false, attributes: { a: 1.5, b: true } }], 'svc') as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }>;
    };
    const s = payload.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    expect(s.startTimeUnixNano).toBe('1700000000123500000');
    expect(s.endTimeUnixNano).toBe('1700000000124000000');
    expect(s.attributes).toEqual([{ key: 'a', value: { doubleValue: 1.5 } }, { key: 'b', value: { boolValue: true } }]);
  });
});
