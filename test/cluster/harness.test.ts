/**
 * The cluster harness proves itself first: each fault it injects is real before any scenario
 * relies on it (SCALE-OUT §4.2). Fast: a few seconds in all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../../tools/postgres.ts';
import { startRedisTcp, type RedisTcpServer } from '../../tools/redis.ts';
import { startDelayProxy, type DelayProxy } from './delay-proxy.ts';
import { createRegions, netnsSkipReason, type Regions } from './netns.ts';
import { NsReach } from './ns-gateway.ts';
import { Procs } from './procs.ts';
import { startTcpLb, type TcpLb } from './tcp-lb.ts';
import { startLoad } from './load.ts';

/** How long a silent path must stay silent to count as cut (the brief's bound). */
const SILENCE_MS = 1000;

/** An echo server: writes back every chunk, prefixed by its own name. */
async function echoServer(name: string, host = '127.0.0.1'): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => s.destroy());
    s.on('data', (d) => s.write(`${name}:${d.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Connects, writes `text`, resolves with the first answer (or null after `ms`, with any error). */
function ask(port: number, text: string, ms: number, host = '127.0.0.1'): Promise<{ answer: string | null; error: string | null; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    let error: string | null = null;
    const timer = setTimeout(() => resolve({ answer: null, error, socket }), ms);
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    socket.once('close', () => (error ??= 'closed'));
    socket.once('data', (d) => {
      clearTimeout(timer);
      resolve({ answer: d.toString(), error, socket });
    });
    socket.write(text);
  });
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('the delay proxy', () => {
  it('adds at least its delay and keeps the order of chunks', async () => {
    const echo = await echoServer('e');
    const proxy: DelayProxy = await startDelayProxy({ target: { host: '127.0.0.1', port: echo.port }, delayMs: 50 });
    cleanups.push(() => proxy.close(), () => new Promise<void>((r) => echo.server.close(() => r())));
    const socket = connect(proxy.address.port, proxy.address.host);
    cleanups.push(() => void socket.destroy());
    let received = '';
    const started = performance.now();
    let firstAt = 0;
    socket.on('data', (d) => {
      if (!received) firstAt = performance.now();
      received += d.toString();
    });
    for (let i = 0; i < 20; i++) socket.write(`${String(i).padStart(2, '0')};`);
    const expected = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')};`).join('');
    await expect.poll(() => received.replace(/e:/g, ''), { timeout: 5000, interval: 10 }).toBe(expected);
    // Both directions are delayed: the first echo comes back no sooner than 2 × 50 ms.
    expect(firstAt - started).toBeGreaterThanOrEqual(100);
  });

  it('cut() is silent: a write gets no answer and no error, and heal() delivers it', async () => {
    const echo = await echoServer('e');
    const proxy = await startDelayProxy({ target: { host: '127.0.0.1', port: echo.port } });
    cleanups.push(() => proxy.close(), () => new Promise<void>((r) => echo.server.close(() => r())));
    // Positive sign first: the path answers before the cut.
    const before = await ask(proxy.address.port, 'ping', 5000);
    expect(before.answer).toBe('e:ping');
    let error: string | null = null;
    let answer = '';
    before.socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    before.socket.on('close', () => (error ??= 'closed'));
    before.socket.on('data', (d) => (answer += d.toString()));
    proxy.cut();
    before.socket.write('lost?');
    await new Promise((r) => setTimeout(r, SILENCE_MS));
    expect({ answer, error }).toEqual({ answer: '', error: null });
    // A new connection during the cut is accepted and hears nothing either.
    const during = await ask(proxy.address.port, 'new', SILENCE_MS);
    expect({ answer: during.answer, error: during.error }).toEqual({ answer: null, error: null });
    proxy.heal();
    await expect.poll(() => answer, { timeout: 5000 }).toBe('e:lost?');
    during.socket.destroy();
    before.socket.destroy();
  });
});

describe('the TCP load balancer', () => {
  it('spreads connections round robin and skips an upstream that refuses', async () => {
    const a = await echoServer('a');
    const b = await echoServer('b');
    // A port nothing listens on: connections to it are refused.
    const dead = await echoServer('dead');
    const deadPort = dead.port;
    await new Promise<void>((r) => dead.server.close(() => r()));
    const lb: TcpLb = await startTcpLb({ upstreams: [{ host: '127.0.0.1', port: a.port }, { host: '127.0.0.1', port: deadPort }, { host: '127.0.0.1', port: b.port }] });
    cleanups.push(() => lb.close(), () => new Promise<void>((r) => a.server.close(() => r())), () => new Promise<void>((r) => b.server.close(() => r())));
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await ask(lb.address.port, 'x', 5000);
      answers.push(r.answer ?? `none (${r.error})`);
      r.socket.destroy();
    }
    expect(answers.every((x) => x === 'a:x' || x === 'b:x')).toBe(true);
    expect(answers.filter((x) => x === 'a:x').length).toBeGreaterThanOrEqual(2);
    expect(answers.filter((x) => x === 'b:x').length).toBeGreaterThanOrEqual(2);
    expect(lb.routed).not.toContain(1);
  });

  it('with policy first, sends everything to the first live upstream and fails over when it dies', async () => {
    const a = await echoServer('a');
    const b = await echoServer('b');
    const lb = await startTcpLb({ policy: 'first', upstreams: [{ host: '127.0.0.1', port: a.port }, { host: '127.0.0.1', port: b.port }] });
    cleanups.push(() => lb.close(), () => new Promise<void>((r) => b.server.close(() => r())));
    const first = await ask(lb.address.port, 'x', 5000);
    first.socket.destroy();
    expect(first.answer).toBe('a:x');
    await new Promise<void>((r) => a.server.close(() => r()));
    const second = await ask(lb.address.port, 'y', 5000);
    second.socket.destroy();
    expect(second.answer).toBe('b:y');
  });
});

describe('the bounded load loop', () => {
  it('refuses targets outside loopback and the test namespaces', () => {
    expect(() => startLoad({ urls: ['http://192.0.2.1/'], ratePerSecond: 1, durationMs: 10 })).toThrow(/loopback and the test namespaces only/);
  });

  it('records status and dcdn headers, and caps its rate', async () => {
    const server = (await import('node:http')).createServer((req, res) => {
      res.setHeader('dcdn-host', 'h1');
      if (req.url === '/fail') {
        res.statusCode = 503;
        res.setHeader('dcdn-error', 'INGRESS_NO_HOST');
      }
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const load = startLoad({ urls: [`http://127.0.0.1:${port}/`, `http://127.0.0.1:${port}/fail`], ratePerSecond: 1000, durationMs: 500 });
    const s = await load.done;
    // Capped at 100 req/s: about 50 in half a second, never the 500 asked for.
    expect(s.total).toBeLessThanOrEqual(60);
    expect(s.ok).toBeGreaterThan(0);
    expect(s.byError.INGRESS_NO_HOST).toBe(s.failed);
    expect(s.byHost.h1).toBe(s.total);
  });
});

const skip = netnsSkipReason();
if (skip) console.warn(`[cluster harness] ${skip}`);

describe.skipIf(skip !== null)('network namespaces', () => {
  let regions: Regions | null = null;
  const procs = new Procs();
  let redis: RedisTcpServer | null = null;
  let pg: PostgresServer | null = null;
  const gatewayDir = mkdtempSync(join(tmpdir(), 'dcdn-gw-'));
  let reach2: NsReach | null = null;

  afterAll(async () => {
    reach2?.destroy();
    await redis?.stop().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    await procs.killAll();
    regions?.destroy();
    rmSync(gatewayDir, { recursive: true, force: true });
  });

  it('a partition makes a TCP connect across the veth time out silently, and heal restores it', async () => {
    regions = createRegions();
    // Gateways let this process reach into r1 and r2; a listener in r1 is probed from r2.
    const gw1 = procs.helper('gw-r1', 'ns-gateway.ts', [join(gatewayDir, 'r1.sock')], { prefix: regions.r1.prefix });
    const gw2 = procs.helper('gw-r2', 'ns-gateway.ts', [join(gatewayDir, 'r2.sock')], { prefix: regions.r2.prefix });
    await gw1.waitForLog(/listening/);
    await gw2.waitForLog(/listening/);
    const target = procs.helper('echo-r1', 'delay-proxy.ts', [`${regions.r1.address}:7001`, '127.0.0.1:7002'], { prefix: regions.r1.prefix });
    await target.waitForLog(/listening/);
    reach2 = new NsReach(join(gatewayDir, 'r2.sock'));
    const probe = (ms: number) =>
      new Promise<string>((resolve) => {
        const s = reach2!.createConnection({ host: regions!.r1.address, port: 7001 });
        const timer = setTimeout(() => (s.destroy(), resolve('silent')), ms);
        s.on('error', (e: NodeJS.ErrnoException) => (clearTimeout(timer), resolve(`error ${e.code}`)));
        // The gateway relays from r2; its upstream connect succeeds only if the SYN crosses the veth.
        // The proxy in r1 then accepts and dials 7002 (nothing there) and closes: a close means the path works.
        s.on('close', () => (clearTimeout(timer), resolve('reached')));
      });
    // Positive sign first: r2 reaches r1 across the veth.
    expect(await probe(5000)).toBe('reached');
    regions.partition();
    expect(await probe(SILENCE_MS)).toBe('silent');
    regions.heal();
    expect(await probe(5000)).toBe('reached');
  });

  it('Redis and Postgres over TCP in r1 answer from r2', async () => {
    expect(regions).not.toBeNull();
    const r = regions!;
    [redis, pg] = await Promise.all([
      startRedisTcp({ host: r.r1.address, port: 7379, prefix: r.r1.prefix }),
      startPostgres({ host: r.r1.address, port: 7432, prefix: r.r1.prefix }),
    ]);
    const redisAnswer = await new Promise<string>((resolve) => {
      const s = reach2!.createConnection({ host: r.r1.address, port: 7379 });
      s.on('error', (e) => resolve(`error ${e.message}`));
      s.once('data', (d) => (s.destroy(), resolve(d.toString())));
      s.write('PING\r\n');
    });
    expect(redisAnswer).toBe('+PONG\r\n');
    // Postgres: the protocol's SSLRequest gets a one-byte 'N' (no TLS here) from a live server.
    const pgAnswer = await new Promise<string>((resolve) => {
      const s = reach2!.createConnection({ host: r.r1.address, port: 7432 });
      s.on('error', (e) => resolve(`error ${e.message}`));
      s.once('data', (d) => (s.destroy(), resolve(d.toString())));
      s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    });
    expect(pgAnswer).toBe('N');
  });
});
