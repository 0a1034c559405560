/**
 * /_dcdn/tail, the ingress's live request stream behind `dcdn tail`: operators only, filters
 * applied by the ingress, and a reader that stops reading costs dropped events (counted and
 * reported), never stalled requests. Node hosts over the real WebSocket transport.
 */
import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Stream } from '../protocol/index.ts';
import { BIN } from './cli.ts';
import { mintToken } from '../signaling/index.ts';
import { SECRET, startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

// A real operator token of the test network: signaling shows it the ingresses' addresses.
const OPERATOR = mintToken(SECRET, { role: 'operator', sub: 'tail-tests', ttlSeconds: 3600 });
let net: NodeNetwork;

beforeAll(async () => {
  net = await startNodeNetwork({ authorizeOperator: (t) => t === OPERATOR, tail: { maxBufferedBytes: 64 * 1024, maxSubscribers: 4 }, shutdownGraceMs: 500 });
});
afterAll(() => net.close());
afterEach(() => net.removeHosts());

/** A host answering `/status/N` with N and everything else with 200. */
function statusHost(s: Stream): void {
  s.onreset = () => {};
  const m = /\/status\/(\d{3})/.exec(s.request.url);
  s.respond({ status: m ? Number(m[1]) : 200, headers: [] }, true);
}

interface Tail {
  ws: WebSocket;
  events: Array<Record<string, unknown>>;
  /** Resolves once `n` request events have arrived. */
  requests(n: number): Promise<Array<Record<string, unknown>>>;
}

async function openTail(query = '', token: string | null = OPERATOR): Promise<Tail> {
  const url = `${net.ingress.url.replace(/^http/, 'ws')}/_dcdn/tail${query}`;
  const ws = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (d) => {
    events.push(JSON.parse(String(d)) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode, code: res.headers['dcdn-error'] })));
    ws.once('error', reject);
  });
  // The hello says the subscription is in place: requests after it are seen.
  await new Promise<void>((resolve) => {
    const check = () => (events.some((e) => e.type === 'hello') ? resolve() : waiters.push(check));
    check();
  });
  return {
    ws,
    events,
    requests: (n) =>
      new Promise((resolve) => {
        const check = () => {
          const got = events.filter((e) => e.type === 'request');
          if (got.length >= n) resolve(got);
          else waiters.push(check);
        };
        check();
      }),
  };
}

describe('/_dcdn/tail', () => {
  it('streams each request with its id, status, host and transport', async () => {
    await net.addHost('tailed', statusHost);
    const tail = await openTail();
    const res = await fetch(`${net.ingress.url}/hello?x=1`);
    const [event] = await tail.requests(1);
    expect(event).toMatchObject({
      type: 'request',
      requestId: res.headers.get('dcdn-request-id'),
      method: 'GET',
      url: '/hello?x=1',
      status: 200,
      host: 'tailed',
      transport: 'websocket',
      volunteer: false,
      code: null,
      ingress: 'ingress',
    });
    expect(typeof event!.ms).toBe('number');
    tail.ws.close();
  });

  it('sends only what the filters ask for: --status 5xx, --method, --search', async () => {
    await net.addHost('mixed', statusHost);
    const failures = await openTail('?status=5xx');
    const posts = await openTail('?method=post');
    const search = await openTail('?search=needle');
    for (const path of ['/status/200', '/status/404', '/status/500', '/status/503', '/needle/status/200']) await fetch(`${net.ingress.url}${path}`);
    await fetch(`${net.ingress.url}/status/201`, { method: 'POST', body: 'x' });
    // The last request was seen by a tail that gets everything: the others have had theirs.
    const all = await openTail();
    await fetch(`${net.ingress.url}/last`);
    await all.requests(1);
    expect(failures.events.filter((e) => e.type === 'request').map((e) => e.status)).toEqual([500, 503]);
    expect(posts.events.filter((e) => e.type === 'request').map((e) => e.url)).toEqual(['/status/201']);
    expect(search.events.filter((e) => e.type === 'request').map((e) => e.url)).toEqual(['/needle/status/200']);
    for (const t of [failures, posts, search, all]) t.ws.close();
  });

  it('refuses callers without an operator token, bad filters, and tails past the limit, each with a code', async () => {
    await expect(openTail('', null)).rejects.toMatchObject({ status: 401, code: 'INGRESS_UNAUTHORIZED' });
    await expect(openTail('', 'wrong')).rejects.toMatchObject({ status: 401, code: 'INGRESS_UNAUTHORIZED' });
    await expect(openTail('?status=teapot')).rejects.toMatchObject({ status: 400, code: 'INGRESS_BAD_REQUEST' });
    await expect(openTail('?sampling=2')).rejects.toMatchObject({ status: 400, code: 'INGRESS_BAD_REQUEST' });
    await until(() => net.ingress.tail.size === 0);
    const open = await Promise.all([1, 2, 3, 4].map(() => openTail()));
    await expect(openTail()).rejects.toMatchObject({ status: 503, code: 'INGRESS_TAIL_FULL' });
    for (const t of open) t.ws.close();
  });

  it('drops events for a reader that stops reading, never the requests, and says how many it dropped', async () => {
    await net.addHost('busy', statusHost);
    const slow = await openTail();
    // Stop reading: TCP fills up, then the ingress's send buffer for this subscriber.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const long = `/${'x'.repeat(2000)}`;
    let sent = 0;
    // Bounded: enough to overflow the kernel's buffers and the 64 KiB limit many times over.
    while (net.ingress.tail.dropped === 0 && sent < 20_000) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => fetch(`${net.ingress.url}${long}`).then((r) => r.status)));
      expect(batch.every((s) => s === 200)).toBe(true);
      sent += 50;
    }
    expect(net.ingress.tail.dropped).toBeGreaterThan(0);
    const droppedAtIngress = net.ingress.tail.dropped;
    // Read again: what was buffered arrives, then the next event is preceded by the drop count.
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await until(() => slow.events.filter((e) => e.type === 'request').length === sent - droppedAtIngress, 20_000);
    await fetch(`${net.ingress.url}/after`);
    await until(() => slow.events.some((e) => e.type === 'dropped'), 10_000);
    const dropped = slow.events.filter((e) => e.type === 'dropped').reduce((n, e) => n + (e.count as number), 0);
    expect(dropped).toBe(droppedAtIngress);
    slow.ws.close();
  }, 120_000);
});

/** `dcdn tail ...args` as a child process, with its output as it comes. */
function runTail(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'tail', '--token', OPERATOR, ...args], { env: { ...process.env, DCDN_HOME: '/nonexistent-dcdn-home' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exited };
}

describe('dcdn tail', () => {
  it('--status 5xx --format json prints only the failures, one JSON line each, and Ctrl-C ends it with 0', async () => {
    await net.addHost('cli', statusHost);
    const t = runTail(['--ingress', net.ingress.url, '--status', '5xx', '--format', 'json']);
    await until(() => t.out.stderr.includes('tailing'), 20_000);
    await fetch(`${net.ingress.url}/status/200`);
    const failed = await fetch(`${net.ingress.url}/status/502`);
    await until(() => t.out.stdout.includes('\n'), 10_000);
    const lines = t.out.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ status: 502, url: '/status/502', requestId: failed.headers.get('dcdn-request-id') });
    t.child.kill('SIGINT');
    expect(await t.exited).toBe(0);
  });

  it('finds the ingresses through signaling and prints a line per request for people', async () => {
    await net.addHost('pretty', statusHost);
    const t = runTail(['--signal', net.signalUrl, '--search', 'findme']);
    await until(() => t.out.stderr.includes('tailing'), 20_000);
    const res = await fetch(`${net.ingress.url}/findme?q=1`);
    await until(() => t.out.stdout.includes('\n'), 10_000);
    expect(t.out.stdout).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} GET /findme\\?q=1 200 \\d+ms - pretty websocket id=${res.headers.get('dcdn-request-id')}\\n$`));
    t.child.kill('SIGINT');
    expect(await t.exited).toBe(0);
  });

  it('refuses a bad filter as a usage error before connecting', async () => {
    const t = runTail(['--ingress', net.ingress.url, '--status', 'teapot']);
    expect(await t.exited).toBe(2);
    expect(t.out.stderr).toMatch(/--status must be/);
  });
});
