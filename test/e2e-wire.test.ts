/**
 * The wire's limits and the end of a response, end to end over real Chromium and real werift
 * (issue 15, items 1-3): a handler whose response head the wire cannot carry gets a prompt 502
 * HOST_BAD_HANDLER_RESPONSE (it used to hang 30 s and get 504); a request head past the wire's
 * limits never reaches the tab; a response with a correct Content-Length whose body stream never
 * closes ends at its length and frees its slot and the keep-alive connection.
 */
import { Agent, request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { LIMITS, type StreamError } from '../protocol/index.ts';
import { disconnectBrowser } from './browser.ts';
import { startNetwork, until, type Network } from './network.ts';

const WIRE_APP = fileURLToPath(new URL('./fixtures/wire-app.ts', import.meta.url));
let net: Network;
let ingress: Ingress;

beforeAll(async () => {
  net = await startNetwork({ app: WIRE_APP });
  ingress = await net.addIngress({ transport: 'webrtc', proxy: { maxHeaderBytes: 100_000 } });
  await net.addTab('wire-tab');
  await until(() => ingress.pool.size === 1, 20_000, 'the host connected to the ingress');
}, 60_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
});

function get(path: string, opts: { agent?: Agent; headers?: Record<string, string> } = {}): Promise<{ status: number; code: string | undefined; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${ingress.url}${path}`, { agent: opts.agent ?? false, headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, code: res.headers['dcdn-error'] as string | undefined, body, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('response heads the wire cannot carry', () => {
  it.each([
    ['more than 256 headers', '/many-headers'],
    ['a 70 KB header', '/big-header'],
    ['a head over 64 K characters', '/big-head'],
  ])('%s: a prompt 502 HOST_BAD_HANDLER_RESPONSE, the host kept in rotation', async (_name, path) => {
    const r = await get(path);
    expect(r.status).toBe(502);
    expect(r.code).toBe('HOST_BAD_HANDLER_RESPONSE');
    expect(r.body).toContain('too large for the wire');
    // The tab and its session are fine: the next request is served.
    expect((await get('/')).body).toBe('wire test app');
    expect(ingress.pool.list()[0]!.inFlight).toBe(0);
  });
});

describe('request heads the wire cannot carry never reach the tab', () => {
  it('answers 260 headers with 431 and the next request normally', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 260; i++) headers[`x-h${i}`] = 'v'.repeat(30);
    const r = await get('/', { headers });
    expect([r.status, r.code]).toEqual([431, 'INGRESS_HEADERS_TOO_LARGE']);
    expect((await get('/')).status).toBe(200);
  });

  it('a head that reaches the tab anyway (opened past the ingress’s checks) is reset at once, not dropped', async () => {
    // What a buggy or older ingress could send: the tab's decoder refuses it and says so.
    const session = ingress.pool.list()[0]!.session;
    const many = Array.from({ length: LIMITS.headerCount + 1 }, (_, i): [string, string] => [`x-h${i}`, 'v']);
    const stream = session.open({ method: 'GET', url: `${ingress.url}/`, headers: many, app: '' }, true);
    const err = await new Promise<StreamError>((resolve) => {
      stream.onreset = resolve;
      stream.onhead = () => resolve({ code: 'answered', message: '' });
    });
    expect(err.code).toBe('PROTO_FRAME_INVALID');
    expect(session.isOpen).toBe(true);
    expect((await get('/')).status).toBe(200);
  });

  it('hands the handler its own Host and path for GET //evil.example/admin', async () => {
    const r = await get('//evil.example/admin?echo');
    expect(r.status).toBe(200);
    const seen = new URL(r.body);
    expect(seen.host).toBe(new URL(ingress.url).host);
    expect(seen.pathname).toBe('//evil.example/admin');
  });
});

describe('a response complete at its Content-Length whose stream stays open', () => {
  it('ends at its length, frees the slot, serves the next request on the same connection, and cancels the handler’s body', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const id = `open-${Date.now()}`;
    try {
      expect(await get(`/open-length?id=${id}`, { agent })).toMatchObject({ status: 200, body: 'hello', reused: false });
      expect(await get('/next?echo', { agent })).toMatchObject({ status: 200, reused: true });
      await until(() => ingress.pool.list()[0]!.inFlight === 0, 5000, 'in-flight back to zero');
      // The rest of the body was cancelled in the tab (asked of the app, which runs in a worker).
      const end = Date.now() + 10_000;
      let seen = false;
      while (!seen && Date.now() < end) seen = (await get(`/cancelled?id=${id}`)).body === 'yes';
      expect(seen).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it('serves 200 such requests over 50 keep-alive connections with no 503 and nothing held after', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    try {
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => get(`/open-length?id=load-${i}`, { agent })));
      const counts: Record<string, number> = {};
      for (const r of results) counts[`${r.status} ${r.code ?? ''}`.trim()] = (counts[`${r.status} ${r.code ?? ''}`.trim()] ?? 0) + 1;
      console.info(`[wire e2e] 200 open-length requests over 50 connections: ${JSON.stringify(counts)}`);
      expect(counts).toEqual({ '200': 200 });
      expect(results.every((r) => r.body === 'hello')).toBe(true);
      await until(() => ingress.pool.list()[0]!.inFlight === 0, 5000, 'in-flight back to zero');
      await until(() => ingress.pool.list()[0]!.session.openStreams === 0, 10_000, 'every stream cancelled or ended');
    } finally {
      agent.destroy();
    }
  }, 60_000);
});
