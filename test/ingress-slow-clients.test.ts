/**
 * Slow clients (RELIABILITY 13): slowloris headers are cut at the header timeout (not at Node's
 * 30 s check interval), a trickling body is cut by the minimum-rate rule (not only by the idle
 * timer, which a byte a second never trips) with its host stream cancelled, and healthy clients,
 * also ones the host holds back, are not touched. Timings are generous: the machine is shared.
 */
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createIngress, type Ingress } from '../ingress/index.ts';
import type { Stream } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';
import { SECRET, startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

const HEADERS_TIMEOUT_MS = 1000;
const MIN_RATE = 256;
const GRACE_MS = 1500;
let net: NodeNetwork;
let ingress: Ingress;
const open: Socket[] = [];

beforeAll(async () => {
  net = await startNodeNetwork({
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
    // The idle timer is far away: whatever cuts a trickle here is the rate rule.
    proxy: { headTimeoutMs: 5000, idleTimeoutMs: 30_000, minBodyBytesPerSecond: MIN_RATE, bodyRateGraceMs: GRACE_MS },
    session: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 2000 },
    shutdownGraceMs: 500,
  });
  ingress = net.ingress;
});

afterAll(() => net.close());

afterEach(async () => {
  for (const s of open.splice(0)) s.destroy();
  await net.removeHosts();
});

const addHost = (name: string, onstream: (s: Stream) => void) => net.addHost(name, onstream);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A host that reads the whole body and answers with its size. With `holdMs`, it hands no
 * credit back for that long after the first chunk (the upload stalls on the host), then reads
 * at full speed.
 */
function counting(resets: string[], holdMs = 0) {
  return (s: Stream) => {
    let n = 0;
    let releaseAt = 0;
    s.onreset = (e) => resets.push(e.code);
    s.ondata = (c) => {
      n += c.byteLength;
      releaseAt ||= Date.now() + holdMs;
      const give = () => s.consume(c.byteLength);
      const wait = releaseAt - Date.now();
      if (wait > 0) setTimeout(give, wait);
      else give();
    };
    s.onend = () => {
      s.respond({ status: 200, headers: [] });
      void s.write(new TextEncoder().encode(String(n))).then(() => s.end());
    };
  };
}

/**
 * A raw connection that writes `head`, then `drip` bytes every `everyMs` until the server
 * answers (or, with `afterAnswer`, until it closes; the client gives up after `giveUpMs`).
 * Resolves with the answer, when it came and when the connection closed.
 */
function trickle(head: string, drip: string, everyMs: number, opts: { afterAnswer?: boolean; giveUpMs?: number } = {}): Promise<{ response: string; ms: number; closedMs: number }> {
  return new Promise((resolve) => {
    const u = new URL(ingress.url);
    const started = performance.now();
    let response = '';
    let answeredAt = 0;
    const sock = connect(Number(u.port), u.hostname, () => sock.write(head));
    open.push(sock);
    const timer = setInterval(() => {
      if ((!answeredAt || opts.afterAnswer) && sock.writable) sock.write(drip);
    }, everyMs);
    const giveUp = setTimeout(() => sock.destroy(), opts.giveUpMs ?? 20_000);
    sock.on('data', (d) => {
      if (!answeredAt) answeredAt = performance.now() - started;
      response += d.toString('latin1');
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ response, ms: answeredAt || performance.now() - started, closedMs: performance.now() - started });
    });
  });
}

/** A normal HTTP POST whose body is written in `parts` pieces `gapMs` apart. */
function post(path: string, body: Buffer, parts = 1, gapMs = 0, base = ingress.url): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = httpRequest(`${base}${path}`, { method: 'POST', headers: { 'content-length': String(body.byteLength) }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text, ms: performance.now() - started }));
    });
    req.on('error', reject);
    void (async () => {
      const size = Math.ceil(body.byteLength / parts);
      for (let i = 0; i < parts; i++) {
        req.write(body.subarray(i * size, (i + 1) * size));
        if (gapMs && i < parts - 1) await sleep(gapMs);
      }
      req.end();
    })();
  });
}

describe('slowloris headers', () => {
  it('answers 408 INGRESS_REQUEST_TIMEOUT and closes within the header timeout plus the check interval', async () => {
    // One header byte every 100 ms: always busy, never done.
    const r = await trickle('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a', 100);
    expect(r.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.response).toContain('dcdn-error: INGRESS_REQUEST_TIMEOUT');
    expect(r.response).toMatch(/connection: close/i);
    expect(r.ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    // Node's default check interval (30 s) would answer after up to 31 s; ours is 250 ms here.
    expect(r.ms).toBeLessThan(HEADERS_TIMEOUT_MS + 250 + 2000);
  });
});

describe('slow request bodies', () => {
  it('cuts a 1-byte-per-second body with 408 by the minimum rate, and cancels the host stream', async () => {
    const resets: string[] = [];
    let opened = 0;
    await addHost('patient', (s) => {
      opened++;
      counting(resets)(s);
    });
    const r = await trickle('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', 'x', 1000);
    expect(r.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.response).toContain('dcdn-error: INGRESS_REQUEST_TIMEOUT');
    expect(r.response).toContain(`slower than ${MIN_RATE} bytes/s`);
    // The grace period of waiting, then the rule; far short of the 30 s idle timeout.
    expect(r.ms).toBeGreaterThanOrEqual(GRACE_MS - 50);
    expect(r.ms).toBeLessThan(GRACE_MS + 3000);
    expect(opened).toBe(1);
    await until(() => resets.length === 1);
    expect(resets).toEqual(['INGRESS_REQUEST_TIMEOUT']);
    const host = ingress.pool.list()[0]!;
    await until(() => host.inFlight === 0 && host.session.openStreams === 0);
    // The connection does not stay open for the trickler: it is closed within the linger time.
    expect(r.closedMs).toBeLessThan(r.ms + 6000);
  });

  it('cuts a chunked trickle the same way', async () => {
    const resets: string[] = [];
    await addHost('patient-chunked', counting(resets));
    const r = await trickle('POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', '1\r\nx\r\n', 500);
    expect(r.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.response).toContain('dcdn-error: INGRESS_REQUEST_TIMEOUT');
    await until(() => resets.length === 1);
    expect(resets).toEqual(['INGRESS_REQUEST_TIMEOUT']);
  });

  it('holds the rest of a body to the same rules after an early answer: a trickle is disconnected', async () => {
    const resets: string[] = [];
    await addHost('early', (s) => {
      s.onreset = (e) => resets.push(e.code);
      s.ondata = (c) => s.consume(c.byteLength);
      s.respond({ status: 200, headers: [['content-length', '5']] });
      void s.write(new TextEncoder().encode('early')).then(() => s.end());
    });
    // A byte every 500 ms keeps Node's own keep-alive timer from ever closing it.
    const r = await trickle('POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc', 'x', 500, { afterAnswer: true, giveUpMs: 10_000 });
    expect(r.response).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.response).toMatch(/\r\n\r\nearly$/);
    // The answer came at once; the connection is closed once the trickle breaks the rate rule,
    // not left open until the 30 s idle timeout.
    expect(r.ms).toBeLessThan(1000);
    expect(r.closedMs).toBeGreaterThanOrEqual(GRACE_MS - 50);
    expect(r.closedMs).toBeLessThan(GRACE_MS + 3000);
    // The host's stream was released as soon as its answer was complete.
    expect(resets).toEqual(['PROTO_CANCELLED']);
    const host = ingress.pool.list()[0]!;
    await until(() => host.inFlight === 0 && host.session.openStreams === 0);
  });

  it('keeps a slow but steady upload above the minimum rate', async () => {
    await addHost('steady', counting([]));
    // 64 bytes every 100 ms: ~640 B/s for 3 s, well past the grace period.
    const r = await post('/steady', Buffer.alloc(64 * 30, 'y'), 30, 100);
    expect(r.status).toBe(200);
    expect(r.body).toBe(String(64 * 30));
  });

  it('does not count time the host holds the upload back against the client', async () => {
    // A strict ingress: at 512 KiB/s, the host's 256 KiB window buys only 0.5 s of waiting.
    // The host hands back no credit for 2.5 s: were that time counted, this client would be cut.
    const strict = createIngress({
      signalUrl: net.signalUrl,
      token: () => mintToken(SECRET, { role: 'ingress', ttlSeconds: 600 }),
      name: 'strict',
      port: 0,
      transport: 'websocket',
      proxy: { headTimeoutMs: 5000, minBodyBytesPerSecond: 512 * 1024, bodyRateGraceMs: 500 },
      shutdownGraceMs: 200,
    });
    await strict.listen();
    try {
      await addHost('slow-reader', counting([], 2500));
      await until(() => strict.pool.size === 1);
      const size = 2 * 1024 * 1024;
      const r = await post('/big', Buffer.alloc(size, 'z'), 1, 0, strict.url);
      expect(r.body).toBe(String(size));
      expect(r.status).toBe(200);
      expect(r.ms).toBeGreaterThan(2000); // it really was held back
    } finally {
      await strict.close();
    }
  });

  it('does not slow a healthy client while slow ones are being cut', async () => {
    const resets: string[] = [];
    await addHost('shared', counting(resets));
    const slow = [
      trickle('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a', 100),
      trickle('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', 'x', 1000),
      trickle('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n', 'x', 1000),
    ];
    await sleep(200);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await post('/healthy', Buffer.alloc(256 * 1024, 'h'));
      expect(r.status).toBe(200);
      expect(r.body).toBe(String(256 * 1024));
      times.push(r.ms);
    }
    // Loopback: milliseconds. Generous for a shared machine, far below any of the timeouts.
    expect(Math.max(...times)).toBeLessThan(1000);
    const done = await Promise.all(slow);
    for (const d of done) expect(d.response).toMatch(/^HTTP\/1\.1 408 /);
  });
});
