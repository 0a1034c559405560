/**
 * WebSockets to handlers end to end (issue 13, item 3): visitors' sockets end at a real ingress,
 * their messages travel over real Chromium tabs' sessions (WebRTC, then the WebSocket
 * transport) to handlers written the Workers way (test/fixtures/ws-app.ts), and an unmodified
 * Hono app using `upgradeWebSocket` from 'hono/cloudflare-workers'.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { startNetwork, until, type Network } from './network.ts';

const WS_APP = fileURLToPath(new URL('./fixtures/ws-app.ts', import.meta.url));

let net: Network;
const sockets = new Set<WebSocket>();

beforeAll(async () => {
  manyMessages = messagesFor(10_000, 10, 13);
  someMessages = messagesFor(1000, 4, 14);
  net = await startNetwork({ app: WS_APP });
}, 60_000);

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await net?.close();
  await disconnectBrowser();
});

function wsUrl(ingress: Ingress, path: string): string {
  return `${ingress.url.replace(/^http/, 'ws')}${path}`;
}

/** Opens a socket to the app; rejects with the HTTP status if the upgrade was refused. */
function connect(ingress: Ingress, path = '/'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(ingress, path), { maxPayload: 64 * 1024 * 1024 });
    sockets.add(ws);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode} ${String(res.headers['dcdn-error'])}`)));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve({ code: -1, reason: 'already closed' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/** Receives `n` messages, in order. */
function receive(ws: WebSocket, n: number): Promise<Array<{ data: Buffer; binary: boolean }>> {
  return new Promise((resolve, reject) => {
    const out: Array<{ data: Buffer; binary: boolean }> = [];
    const onMessage = (data: Buffer, binary: boolean) => {
      out.push({ data, binary });
      if (out.length === n) {
        ws.off('message', onMessage);
        resolve(out);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', (code) => reject(new Error(`closed with ${code} after ${out.length} of ${n} messages`)));
  });
}

/** A deterministic PRNG (mulberry32), so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` messages from 1 B to 1 MiB, alternately text and binary. Sizes are log-uniform, most
 * up to 4 KiB and `large` of them from 64 KiB to 1 MiB (one exactly 1 MiB), so every order of
 * magnitude is covered while the total stays a few tens of MB.
 */
function messagesFor(count: number, large: number, seed: number): Array<{ data: Buffer; binary: boolean }> {
  const random = prng(seed);
  const logUniform = (lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.round(Math.exp(Math.log(lo) + random() * (Math.log(hi) - Math.log(lo))))));
  const sizes = Array.from({ length: count }, (_, i) => (i % Math.floor(count / large) === 7 ? logUniform(64 * 1024, 1024 * 1024) : logUniform(1, 4 * 1024)));
  sizes[3] = 1;
  sizes[count - 2] = 1024 * 1024;
  const chars = Array.from('abcdefghijklmnopqrstuvwxyz0123456789éü€😀 ');
  const pool = Array.from({ length: 50_000 }, () => chars[Math.floor(random() * chars.length)]!).join('');
  return sizes.map((size, i) => {
    if (i % 2 === 1) return { data: randomBytes(size), binary: true };
    // Text of exactly `size` bytes of UTF-8, multi-byte characters included: a window of the
    // pool, cut at a character boundary and padded with ASCII.
    const at = Math.floor(random() * 10_000);
    const window = pool.repeat(Math.ceil((at + size) / pool.length)).slice(at, at + size);
    const bytes = Buffer.from(window);
    let cut = Math.min(size, bytes.length);
    while (cut < bytes.length && cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
    return { data: Buffer.concat([bytes.subarray(0, cut), Buffer.alloc(size - cut, 'a')]), binary: false };
  });
}

/** Made before the network starts: this process is the ingress too, and building tens of MB of
 * messages must not block its event loop while sessions' heartbeats run. */
let manyMessages: Array<{ data: Buffer; binary: boolean }> = [];
let someMessages: Array<{ data: Buffer; binary: boolean }> = [];

async function echoesInOrder(ingress: Ingress, messages: Array<{ data: Buffer; binary: boolean }>): Promise<number> {
  const ws = await connect(ingress);
  const got = receive(ws, messages.length);
  let count = 0;
  const received = () => count;
  ws.on('message', () => count++);
  for (const m of messages) ws.send(m.data, { binary: m.binary });
  const progress = setInterval(() => console.log(`echoes: ${received()} of ${messages.length}`), 10_000);
  const echoed = await got.finally(() => clearInterval(progress));
  let mismatches = 0;
  for (let i = 0; i < messages.length; i++) {
    if (echoed[i]!.binary !== messages[i]!.binary || !echoed[i]!.data.equals(messages[i]!.data)) mismatches++;
  }
  ws.close(1000);
  await closed(ws);
  return mismatches;
}

async function closesSeen(ingress: Ingress): Promise<Array<{ code: number; reason: string; wasClean: boolean }>> {
  const res = await fetch(`${ingress.url}/closes`);
  return (await res.json()) as Array<{ code: number; reason: string; wasClean: boolean }>;
}

/** The close-code checks both ways, run on each transport. */
async function closeCodesBothWays(ingress: Ingress): Promise<void> {
  // The handler closes: the visitor gets its code and reason.
  const a = await connect(ingress, '/?mode=close&code=4001&reason=handler%20says%20bye');
  const aClosed = closed(a);
  a.send('close please');
  expect(await aClosed).toEqual({ code: 4001, reason: 'handler says bye' });
  // The visitor closes: the handler's close event gets its code and reason.
  const b = await connect(ingress);
  const before = (await closesSeen(ingress)).length;
  b.close(4002, 'visitor says bye');
  expect((await closed(b)).code).toBe(4002);
  let seen: Awaited<ReturnType<typeof closesSeen>> = [];
  for (let i = 0; i < 100 && seen.length <= before; i++) {
    seen = await closesSeen(ingress);
    if (seen.length <= before) await new Promise((r) => setTimeout(r, 50));
  }
  expect(seen.slice(before)).toContainEqual({ code: 4002, reason: 'visitor says bye', wasClean: true });
}

/** Kills the tab behind `sockets` and waits for every one of them to be closed. */
async function killTabClosesSockets(ingress: Ingress, tabName: string, n: number): Promise<number[]> {
  const open = await Promise.all(Array.from({ length: n }, () => connect(ingress)));
  // Every one works before the kill.
  await Promise.all(
    open.map(async (ws, i) => {
      const got = receive(ws, 1);
      ws.send(`before ${i}`);
      expect((await got)[0]!.data.toString()).toBe(`before ${i}`);
    }),
  );
  const codes = Promise.all(open.map((ws) => closed(ws).then((c) => c.code)));
  const tab = net.tabs.find((t) => t.url().includes(`name=${tabName}`))!;
  const killedAt = Date.now();
  await tab.close();
  const result = await codes;
  console.log(`tab ${tabName} killed: ${n} sockets closed within ${Date.now() - killedAt} ms`);
  return result;
}

describe('WebSockets to handlers over webrtc', () => {
  let ingress: Ingress;
  beforeAll(async () => {
    ingress = await net.addIngress({ transport: 'webrtc' });
    await net.addTab('ws-rtc');
    await until(() => ingress.pool.list().some((h) => h.transport === 'webrtc'), 20_000, 'a host over webrtc');
  }, 60_000);

  it('echoes 10,000 messages from 1 B to 1 MiB, text and binary, byte-exact and in order', async () => {
    const started = Date.now();
    expect(await echoesInOrder(ingress, manyMessages)).toBe(0);
    const bytes = manyMessages.reduce((n, m) => n + m.data.byteLength, 0);
    console.log(`10,000 messages (${(bytes / 2 ** 20).toFixed(1)} MiB each way) echoed in ${Date.now() - started} ms`);
  }, 90_000);

  it('carries 200 sockets at once', async () => {
    const all: WebSocket[] = [];
    // Opened 50 at a time (an upgrade holds a request slot until its 101), then all held open.
    for (let i = 0; i < 200; i += 50) all.push(...(await Promise.all(Array.from({ length: 50 }, () => connect(ingress)))));
    expect(ingress.webSockets.stats.open).toBeGreaterThanOrEqual(200);
    await Promise.all(
      all.map(async (ws, i) => {
        const got = receive(ws, 2);
        ws.send(`hello ${i}`);
        ws.send(Buffer.from([i & 0xff, 1, 2]));
        const [text, bin] = await got;
        expect(text!.data.toString()).toBe(`hello ${i}`);
        expect([...bin!.data]).toEqual([i & 0xff, 1, 2]);
      }),
    );
    await Promise.all(all.map((ws) => (ws.close(1000, 'done'), closed(ws))));
    await until(() => ingress.webSockets.stats.open === 0, 10_000, 'every socket closed at the ingress');
  }, 60_000);

  it('passes close codes and reasons both ways', async () => {
    await closeCodesBothWays(ingress);
  }, 30_000);

  it('keeps ingress memory bounded while a visitor sends faster than the handler reads', async () => {
    const ws = await connect(ingress, '/?mode=slow&ms=3');
    const count = 100;
    const size = 64 * 1024;
    const chunk = randomBytes(size);
    // The peak of this socket alone: every other socket is closed by now.
    await until(() => ingress.webSockets.stats.bufferedBytes === 0, 10_000, 'no visitor bytes buffered');
    const before = ingress.webSockets.stats.maxBufferedBytes;
    ingress.webSockets.stats.maxBufferedBytes = 0;
    for (let i = 0; i < count; i++) ws.send(chunk);
    ws.send('count');
    const [answer] = await receive(ws, 1);
    expect(Number(answer!.data.toString())).toBe(count * size);
    const peak = ingress.webSockets.stats.maxBufferedBytes;
    console.log(`slow handler: ${(count * size) / 2 ** 20} MiB sent, ingress buffered at most ${peak} bytes (was ${before})`);
    // The high-water mark (256 KiB) plus what one read of the socket held when it was paused.
    expect(peak).toBeLessThan(ingress.webSockets.options.highWaterBytes + 4 * size);
    ws.close(1000);
    await closed(ws);
  }, 60_000);

  it('works with an unmodified Hono app using upgradeWebSocket from hono/cloudflare-workers', async () => {
    const ws = await connect(ingress, '/hono/ws');
    const got = receive(ws, 2);
    ws.send('hi');
    ws.send('there');
    expect((await got).map((m) => m.data.toString())).toEqual(['hono:hi', 'hono:there']);
    ws.close(4005, 'from the visitor');
    expect((await closed(ws)).code).toBe(4005);
    // Hono's plain HTTP route still answers.
    expect(await (await fetch(`${ingress.url}/hono`)).text()).toBe('Hono with WebSockets');
  }, 30_000);

  it('closes every socket with 1011 or 1012 when the tab dies', async () => {
    const codes = await killTabClosesSockets(ingress, 'ws-rtc', 20);
    expect(codes.every((c) => c === 1011 || c === 1012)).toBe(true);
  }, 30_000);
});

describe('WebSockets to handlers over the WebSocket transport', () => {
  let ingress: Ingress;
  beforeAll(async () => {
    // One tab alone, so that /closes reads the handler that served the sockets.
    for (const t of net.tabs) if (!t.isClosed()) await t.close();
    ingress = await net.addIngress({ transport: 'websocket' });
    await net.addTab('ws-ws');
    await until(() => ingress.pool.list().some((h) => h.transport === 'websocket'), 20_000, 'a host over the WebSocket transport');
  }, 60_000);

  it('echoes messages from 1 B to 1 MiB byte-exact and in order', async () => {
    expect(await echoesInOrder(ingress, someMessages)).toBe(0);
  }, 60_000);

  it('passes close codes and reasons both ways', async () => {
    await closeCodesBothWays(ingress);
  }, 30_000);

  it('closes every socket with 1011 or 1012 when the tab dies', async () => {
    const codes = await killTabClosesSockets(ingress, 'ws-ws', 10);
    expect(codes.every((c) => c === 1011 || c === 1012)).toBe(true);
  }, 30_000);
});
