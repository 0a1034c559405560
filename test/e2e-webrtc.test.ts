/**
 * End to end over the data channel: curl-like clients → ingress → werift → Chromium tab →
 * the app's handler, and back.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { killTabMidStream } from './tab-death.ts';
import { boundedDownload, describeDownload } from './bounded-download.ts';
import { startNetwork, until, type Network } from './network.ts';

const MiB = 1024 * 1024;
let net: Network;
let ingress: Ingress;
/** A second ingress to the same tabs, with a short head timeout for the 504 test. */
let impatient: Ingress;

beforeAll(async () => {
  net = await startNetwork();
  ingress = await net.addIngress({ transport: 'webrtc' });
  impatient = await net.addIngress({ transport: 'webrtc', proxy: { headTimeoutMs: 1500 } });
  await Promise.all([net.addTab('tab-a'), net.addTab('tab-b')]);
  await until(() => ingress.pool.size === 2 && impatient.pool.size === 2, 20_000, 'two hosts connected to each ingress');
}, 60_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
});

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

describe('the request path over WebRTC', () => {
  it('answers GET / from JavaScript in a headless Chromium tab', async () => {
    const res = await fetch(`${ingress.url}/`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain('Hello from a browser tab');
    expect(text).toMatch(/user agent: .*Chrome\//);
    expect(res.headers.get('dcdn-transport')).toBe('webrtc');
    expect(res.headers.get('dcdn-host')).toMatch(/^tab-[ab]$/);
  });

  it('echoes a 10 MiB POST byte-identical', async () => {
    const body = pattern(10 * 1024 * 1024);
    const res = await fetch(`${ingress.url}/echo`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': 'application/octet-stream' } });
    const echoed = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    expect(echoed.length).toBe(body.length);
    expect(createHash('sha256').update(echoed).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  }, 60_000);

  it('serves 200 concurrent GETs across both hosts', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, () => fetch(`${ingress.url}/`).then(async (r) => ({ status: r.status, host: r.headers.get('dcdn-host'), body: await r.text() }))),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(200);
    expect(new Set(results.map((r) => r.host))).toEqual(new Set(['tab-a', 'tab-b']));
  }, 60_000);

  it('delivers the first /stream chunk before the last one is produced', async () => {
    const started = Date.now();
    const arrivals: number[] = [];
    await new Promise<void>((resolve, reject) => {
      httpRequest(`${ingress.url}/stream?chunks=4&delay=400`, (res) => {
        res.on('data', () => arrivals.push(Date.now() - started));
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    // The last chunk exists only 3 × 400 ms after the first.
    expect(arrivals[0]!).toBeLessThan(arrivals[arrivals.length - 1]! - 800);
  });

  it('streams a 64 MiB /bytes download with the exact bytes, bounded ingress queue and flat live memory', async () => {
    // 64 MiB is hundreds of stream windows (256 KiB) and of every socket buffer; the client stops
    // reading every 16 MiB, so a queue without backpressure would pass its bound within a pause.
    const d = await boundedDownload(ingress, { bytes: 64 * MiB });
    console.info(`[webrtc e2e] /bytes: ${describeDownload(d)}`);
    expect(d.received).toBe(64 * MiB);
    expect(d.mismatch).toBe(-1);
    expect(d.transport).toBe('webrtc');
    expect(d.growth).toBeLessThan(16 * MiB);
  }, 180_000);

  // The long proof, for a release or a change to flow control: DCDN_TEST_GIANT=1.
  it.runIf(process.env.DCDN_TEST_GIANT === '1')('streams a 1 GiB /bytes download with the exact bytes and flat live memory (DCDN_TEST_GIANT=1)', async () => {
    const d = await boundedDownload(ingress, { bytes: 1024 * MiB, pauseEvery: 128 * MiB });
    console.info(`[webrtc e2e] /bytes: ${describeDownload(d)}`);
    expect(d.received).toBe(1024 * MiB);
    expect(d.mismatch).toBe(-1);
    expect(d.growth).toBeLessThan(16 * MiB);
  }, 600_000);

  it('returns 502 HOST_HANDLER_ERROR when the handler throws', async () => {
    const res = await fetch(`${ingress.url}/throw`);
    expect(res.status).toBe(502);
    expect(res.headers.get('dcdn-error')).toBe('HOST_HANDLER_ERROR');
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('deliberate failure');
  });

  it('returns 502 HOST_BAD_HANDLER_RESPONSE when the handler returns something else', async () => {
    const res = await fetch(`${ingress.url}/not-a-response`);
    expect(res.status).toBe(502);
    expect(res.headers.get('dcdn-error')).toBe('HOST_BAD_HANDLER_RESPONSE');
  });

  it('returns 504 when the host never answers, and aborts request.signal in the tab', async () => {
    const id = `hang-${Date.now()}`;
    const res = await fetch(`${impatient.url}/watch-abort?id=${id}`);
    expect(res.status).toBe(504);
    expect(res.headers.get('dcdn-error')).toBe('INGRESS_HEAD_TIMEOUT');
    // The cancel reached the handler: its request.signal fired (asked of the app itself, which
    // runs in a sandboxed worker; the other tab's copy answers 'no', so ask a few times).
    const end = Date.now() + 10_000;
    let seen = false;
    while (!seen && Date.now() < end) seen = (await (await fetch(`${impatient.url}/aborted?id=${id}`)).text()) === 'yes';
    expect(seen).toBe(true);
  });

  it('passes request headers a browser would hide, and returns Set-Cookie', async () => {
    const res = await fetch(`${ingress.url}/headers`, { headers: { cookie: 'session=abc', origin: 'https://example.test' } });
    const seen = (await res.json()) as Record<string, string>;
    expect(seen.cookie).toBe('session=abc');
    expect(seen.host).toMatch(/^127\.0\.0\.1:/);
    expect(seen.origin).toBe('https://example.test');
  });
});

describe('when a host tab dies', () => {
  it('aborts only that tab’s responses and serves the next requests from the other tab within 5 s', async () => {
    const victimName = 'tab-a';
    const { results, probes, noticedMs } = await killTabMidStream(net, ingress, victimName, 60);
    // The issue: "A tab that dies is noticed within 3 s" (heartbeat: 2.5 s of silence). -1 means not within 5 s.
    console.info(`[webrtc e2e] dead tab out of the pool after ${noticedMs} ms`);
    expect(noticedMs).toBeGreaterThanOrEqual(0);
    expect(noticedMs).toBeLessThan(3000);
    expect(probes.filter((p) => p.status !== 200)).toEqual([]);
    expect(ingress.pool.list().map((h) => h.name)).toEqual(['tab-b']);

    for (const r of results) expect(r.complete, `every stream: ${JSON.stringify(results)}`).toBe(r.host !== victimName);
    expect(results.some((r) => r.host === victimName)).toBe(true);
    const ok = await Promise.all(Array.from({ length: 10 }, () => fetch(`${ingress.url}/`).then((r) => r.status)));
    expect(ok.every((s) => s === 200)).toBe(true);
  }, 30_000);

  it('answers 503 INGRESS_NO_HOST when no host is left', async () => {
    await net.tabs.find((t) => !t.isClosed())!.close();
    await until(() => ingress.pool.size === 0, 6000, 'all hosts gone');
    const res = await fetch(`${ingress.url}/`);
    expect(res.status).toBe(503);
    expect(res.headers.get('dcdn-error')).toBe('INGRESS_NO_HOST');
  }, 15_000);
});
