/**
 * Two real ingresses on one real signaling (issue #11.3, SCALE-OUT.md §3.8): an app that needs
 * `webgpu` is served by one host, which placement attaches to ingress B only. A request for it
 * at ingress A is forwarded to B once (`dcdn-via: A,B`), its body streamed both ways; the peer
 * port refuses callers without the cluster's signature; nothing is forwarded twice.
 *
 * Hosts are node hosts over the WebSocket transport (test/node-host.ts). The `cluster` message
 * comes from signaling when it sends one, else from the relay in front of it
 * (test/cluster-inject.ts), with K = 1 so that each host has exactly one ingress.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { newSecret, signalUrls, startIngress, startSignal, silentLog, type StartedSignal } from '../node/index.ts';
import { assign, type Stream } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';
import { startClusterInjector, type ClusterInjector } from './cluster-inject.ts';
import { startNodeHost, type NodeHost } from './node-host.ts';
import { until } from './node-network.ts';

let signal: StartedSignal;
let secret: string;
let inject: ClusterInjector;
let a: Ingress;
let b: Ingress;
const hosts: NodeHost[] = [];

/** Echoes the method, the app and the body's SHA-256, and who it is. */
const echo = (name: string) => (s: Stream) => {
  s.onreset = () => {};
  const hash = createHash('sha256');
  let bytes = 0;
  const answer = () => {
    const body = JSON.stringify({ host: name, method: s.request.method, app: s.request.app, bytes, sha256: hash.digest('hex'), xff: s.request.headers.find(([n]) => n === 'x-forwarded-for')?.[1] });
    s.respond({ status: 200, headers: [['content-type', 'application/json'], ['content-length', String(Buffer.byteLength(body))]] });
    void s.write(new TextEncoder().encode(body)).then(() => s.end());
  };
  if (!s.requestHasBody) return answer();
  s.ondata = (c) => {
    hash.update(c);
    bytes += c.byteLength;
    s.consume(c.byteLength);
  };
  s.onend = answer;
};

/** A host name whose host placement (K = 1 between A and B) puts on `on`. */
function placedOn(on: 'A' | 'B', prefix: string): string {
  const pair = ['A', 'B'].map((name) => ({ name, region: 'default', weight: 1, draining: false }));
  for (let i = 0; ; i++) if (assign(`node-${prefix}${i}`, 'default', pair, 1)[0] === on) return `${prefix}${i}`;
}

async function metric(ingress: Ingress, direction: string, outcome: string): Promise<number> {
  const families = (await ingress.metrics!.renderJson()) as Array<{ name: string; values: Array<{ labels: Record<string, string>; value: number }> }>;
  const f = families.find((x) => x.name === 'dcdn_peer_forwards_total');
  return f?.values.filter((v) => v.labels.direction === direction && v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0) ?? 0;
}

beforeAll(async () => {
  secret = newSecret();
  // K = 1 (`dcdn signal --attach 1`), for a signaling that sends the cluster message itself;
  // spread untyped, so this file also builds against a signaling without the option.
  signal = await startSignal({ secret, port: 0, host: '127.0.0.1', log: silentLog, attach: 1 });
  await signal.control.deploy('gpu', 'export default { fetch() { return new Response("gpu") } }', 'needs webgpu', { require: ['webgpu'] });
  const ws = signalUrls(signal.url).ws;
  inject = await startClusterInjector(ws, { attach: 1 });
  const common = { secret, signalUrl: inject.url, port: 0, host: '127.0.0.1', transport: 'websocket' as const, peerListen: { host: '127.0.0.1', port: 0 }, log: silentLog };
  a = await startIngress({ ...common, name: 'A' });
  b = await startIngress({ ...common, name: 'B' });
  await until(() => a.cluster?.ingresses.length === 2 && b.cluster?.ingresses.length === 2, 10_000);
  if (a.cluster!.attach !== 1) throw new Error(`signaling sends K = ${a.cluster!.attach}: this test needs K = 1 (start signaling with attach 1)`);
  const gpuName = placedOn('B', 'gpu');
  const plainName = placedOn('A', 'plain');
  const start = (name: string, capabilities: string[] = []) => {
    const h = startNodeHost({ signalUrl: ws, token: mintToken(secret, { role: 'host', sub: name, ttlSeconds: 600 }), name, capabilities, onstream: echo(name) });
    hosts.push(h);
  };
  start(gpuName, ['webgpu']);
  start(plainName);
  await until(() => b.pool.list().some((h) => h.name === gpuName) && a.pool.list().some((h) => h.name === plainName), 15_000);
}, 60_000);

afterAll(async () => {
  for (const h of hosts) h.close();
  await a?.close();
  await b?.close();
  await inject?.close();
  await signal?.server.close();
});

describe('two ingresses sharing hosts', () => {
  it('attach each host to its one placed ingress', () => {
    expect(a.pool.list().map((h) => h.name)).toEqual([expect.stringMatching(/^plain/)]);
    expect(b.pool.list().map((h) => h.name)).toEqual([expect.stringMatching(/^gpu/)]);
  });

  it('answer directly what a local host serves, naming one ingress in dcdn-via', async () => {
    const r = await fetch(`${a.url}/plain`);
    expect(r.status).toBe(200);
    expect(r.headers.get('dcdn-via')).toBe('A');
    expect(((await r.json()) as { host: string }).host).toMatch(/^plain/);
  });

  it('forward a request for the webgpu app from A to B once: dcdn-via A,B, the visitor\'s address kept', async () => {
    const outBefore = await metric(a, 'out', 'answered');
    const r = await fetch(`${a.url}/@gpu/render`);
    expect(r.status).toBe(200);
    expect(r.headers.get('dcdn-via')).toBe('A,B');
    expect(r.headers.get('dcdn-host')).toMatch(/^gpu/);
    const body = (await r.json()) as { host: string; app: string; xff: string };
    expect(body).toMatchObject({ app: 'gpu' });
    // The visitor (this test, on loopback) first, then ingress A as the proxy B believed.
    expect(body.xff).toBe('127.0.0.1, 127.0.0.1');
    expect(await metric(a, 'out', 'answered')).toBe(outBefore + 1);
  });

  it('stream a 4 MiB POST body through the forward unchanged', async () => {
    const data = new Uint8Array(4 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);
    const r = await fetch(`${a.url}/@gpu/upload`, { method: 'POST', body: data });
    expect(r.status).toBe(200);
    expect(r.headers.get('dcdn-via')).toBe('A,B');
    const body = (await r.json()) as { bytes: number; sha256: string; method: string };
    expect(body).toMatchObject({ method: 'POST', bytes: data.byteLength, sha256: createHash('sha256').update(data).digest('hex') });
  });

  it('never forward twice: B answers what it got from A itself, and sends nothing on', async () => {
    expect(await metric(b, 'out', 'answered')).toBe(0);
    expect(await metric(b, 'out', 'refused')).toBe(0);
    expect(await metric(b, 'out', 'unreachable')).toBe(0);
    expect(await metric(b, 'in', 'accepted')).toBeGreaterThanOrEqual(2);
    expect(await metric(a, 'in', 'accepted')).toBe(0);
  });

  it("refuse a forged or missing dcdn-peer header on B's peer port: 403 INGRESS_PEER_FORBIDDEN", async () => {
    for (const headers of [{} as Record<string, string>, { 'dcdn-peer': `A.${Date.now()}.bm90LWEtbWFj` }]) {
      const r = await fetch(`${b.peerUrl}/@gpu/render`, { headers });
      expect(r.status).toBe(403);
      expect(r.headers.get('dcdn-error')).toBe('INGRESS_PEER_FORBIDDEN');
    }
    expect(await metric(b, 'in', 'forbidden')).toBe(2);
  });
});
