/**
 * End to end over the WebSocket transport, the fallback from WebRTC, and the control plane's
 * faults: a signaling restart, and an ingress shutting down with requests in flight.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signalUrls, startSignal } from '../node/index.ts';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { startNetwork, TEST_APP, until, type Network } from './network.ts';

let net: Network;

beforeAll(async () => {
  net = await startNetwork();
  await Promise.all([net.addTab('ws-a'), net.addTab('ws-b')]);
}, 60_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
});

function get(url: string): Promise<{ status: number; transport: string | undefined; body: string; complete: boolean }> {
  return new Promise((resolve) => {
    httpRequest(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, transport: res.headers['dcdn-transport'] as string, body, complete: true }));
      res.on('aborted', () => resolve({ status: res.statusCode!, transport: undefined, body, complete: false }));
    })
      .on('error', () => resolve({ status: 0, transport: undefined, body: '', complete: false }))
      .end();
  });
}

describe('the WebSocket transport', () => {
  let ingress: Ingress;
  beforeAll(async () => {
    ingress = await net.addIngress({ transport: 'websocket' });
    await until(() => ingress.pool.size === 2, 15_000, 'two hosts over WebSocket');
  });

  it('serves GET / from a tab with dcdn-transport: websocket', async () => {
    const r = await get(`${ingress.url}/`);
    expect(r.status).toBe(200);
    expect(r.transport).toBe('websocket');
    expect(r.body).toContain('HeadlessChrome');
  });

  it('echoes a 10 MiB POST byte-identical', async () => {
    const body = new Uint8Array(10 * 1024 * 1024).map((_, i) => (i * 13) & 0xff);
    const res = await fetch(`${ingress.url}/echo`, { method: 'POST', body });
    const echoed = new Uint8Array(await res.arrayBuffer());
    expect(res.headers.get('dcdn-transport')).toBe('websocket');
    expect(createHash('sha256').update(echoed).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  }, 60_000);

  it('carries a 50 MiB upload the handler reads without echoing it', async () => {
    const res = await fetch(`${ingress.url}/count`, { method: 'POST', body: new Uint8Array(50 * 1024 * 1024) });
    expect(await res.text()).toBe(String(50 * 1024 * 1024));
  }, 60_000);
});

describe('falling back from WebRTC', () => {
  it('uses WebSocket for hosts whose data channel does not open in time', async () => {
    // 1 ms is too short for any data channel: every host falls back.
    const ingress = await net.addIngress({ transport: 'webrtc', rtcOpenTimeoutMs: 1 });
    await until(() => ingress.pool.size === 2, 15_000, 'fallback sessions');
    expect(ingress.pool.list().map((h) => h.transport)).toEqual(['websocket', 'websocket']);
    expect((await get(`${ingress.url}/`)).transport).toBe('websocket');
  });
});

describe('control-plane faults', () => {
  it('keeps serving while signaling restarts, and reconnects to it', async () => {
    // A separate network: this test stops its signaling server.
    const first = await startSignal({ secret: 'restart-secret-0123456789', port: 0, host: '127.0.0.1', app: TEST_APP, log: () => {} });
    const port = Number(new URL(first.url).port);
    const { createIngress } = await import('../ingress/index.ts');
    const { mintToken } = await import('../signaling/index.ts');
    const { newPage } = await import('./browser.ts');
    const secret = 'restart-secret-0123456789';
    const ingress = createIngress({ signalUrl: signalUrls(first.url).ws, token: () => mintToken(secret, { role: 'ingress', ttlSeconds: 600 }), port: 0 });
    await ingress.listen();
    const page = await newPage();
    await page.goto(`${first.url}/host?name=restart&token=${mintToken(secret, { role: 'host', ttlSeconds: 600 })}`);
    await until(() => ingress.pool.size === 1, 15_000, 'host connected');
    try {
      await first.server.close();
      for (let i = 0; i < 5; i++) expect((await get(`${ingress.url}/`)).status).toBe(200);
      const second = await startSignal({ secret, port, host: '127.0.0.1', app: TEST_APP, log: () => {} });
      try {
        await until(() => second.server.peers().length === 2, 15_000, 'both rejoined signaling');
        expect(ingress.pool.size).toBe(1);
        expect((await get(`${ingress.url}/`)).status).toBe(200);
      } finally {
        await second.server.close();
      }
    } finally {
      await ingress.close();
      await page.close();
    }
  }, 40_000);

  it('lets in-flight requests finish when the ingress shuts down, and takes no new ones', async () => {
    const ingress = await net.addIngress({ transport: 'websocket', shutdownGraceMs: 5000 });
    await until(() => ingress.pool.size === 2, 15_000, 'hosts');
    const inflight = get(`${ingress.url}/stream?chunks=5&delay=200`);
    await new Promise((r) => setTimeout(r, 150));
    const closing = ingress.close();
    await new Promise((r) => setTimeout(r, 50));
    const refused = await get(`${ingress.url}/`);
    const r = await inflight;
    await closing;
    expect(r.complete).toBe(true);
    expect(r.body.split('\n').filter(Boolean)).toHaveLength(5);
    expect(refused.status === 0 || refused.status === 503).toBe(true);
  }, 20_000);
});
