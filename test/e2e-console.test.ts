/**
 * A handler's console output end to end in real Chromium: the app's `console.log` in the
 * sandbox worker of two host tabs reaches `/_dcdn/tail` (what `dcdn tail` reads) with its
 * request id and host; a thrown error arrives with the user's file and line (mapped through the
 * bundle's source map in the tab), and the 502's body carries the same request id; a line
 * written by `ctx.waitUntil()` work after the response still arrives under the request's id.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Ingress } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import { disconnectBrowser } from './browser.ts';
import { BIN } from './cli.ts';
import { spawn } from 'node:child_process';
import { startNetwork, until, type Network } from './network.ts';

const APP = fileURLToPath(new URL('./fixtures/console-app/worker.ts', import.meta.url));
const THROW_LINE = readFileSync(APP, 'utf8').split('\n').findIndex((l) => l.includes('THROW-LINE')) + 1;

type Event = Record<string, unknown>;
type Line = { level: string; text: string };

let net: Network;
let ingress: Ingress;
let operator: string;
const events: Event[] = [];
const waiters: Array<() => void> = [];
let ws: WebSocket;

beforeAll(async () => {
  net = await startNetwork({ app: APP });
  operator = mintToken(net.secret, { role: 'operator', sub: 'e2e-console', ttlSeconds: 600 });
  ingress = await net.addIngress({ authorizeOperator: (t) => t === operator });
  await Promise.all([net.addTab('console-a'), net.addTab('console-b')]);
  await until(() => ingress.pool.size === 2, 20_000, 'two hosts');
  ws = new WebSocket(`${ingress.url.replace(/^http/, 'ws')}/_dcdn/tail`, { headers: { authorization: `Bearer ${operator}` } });
  ws.on('message', (d) => {
    events.push(JSON.parse(String(d)) as Event);
    for (const w of waiters.splice(0)) w();
  });
  await next((e) => e.type === 'hello');
}, 60_000);

afterAll(async () => {
  ws?.close();
  await net?.close();
  await disconnectBrowser();
});

/** The first event (already here or to come) that `pred` accepts. */
function next(pred: (e: Event) => boolean): Promise<Event> {
  return new Promise((resolve) => {
    const check = () => {
      const hit = events.find(pred);
      if (hit) resolve(hit);
      else waiters.push(check);
    };
    check();
  });
}

/** Every console line the tail has shown for `requestId`: with its request, and after it. */
function linesOf(requestId: string): Line[] {
  const out: Line[] = [];
  for (const e of events) {
    if (e.requestId !== requestId) continue;
    if (e.type === 'request') out.push(...(e.logs as Line[]));
    if (e.type === 'log' && e.line) out.push(e.line as Line);
  }
  return out;
}

describe('console output in dcdn tail, from real tabs', () => {
  it("shows each tab's console.log with its request id and host id", async () => {
    const seen = new Map<string, { requestId: string; marker: string }>();
    // The pool spreads requests over the two tabs; ask until each has served one.
    for (let i = 0; seen.size < 2 && i < 40; i++) {
      const marker = `m-${i}-${Math.random().toString(36).slice(2)}`;
      const res = await fetch(`${ingress.url}/log?marker=${marker}`);
      expect(await res.text()).toBe(`logged ${marker}`);
      const requestId = res.headers.get('dcdn-request-id')!;
      const event = await next((e) => e.type === 'request' && e.requestId === requestId);
      seen.set(String(event.host), { requestId, marker });
    }
    expect([...seen.keys()].sort()).toEqual(['console-a', 'console-b']);
    for (const [host, { requestId, marker }] of seen) {
      const event = await next((e) => e.type === 'request' && e.requestId === requestId);
      expect(event).toMatchObject({ host, volunteer: false, status: 200, logsCut: null });
      expect(event.logs).toEqual([
        expect.objectContaining({ level: 'log', text: `marker ${marker}` }),
        expect.objectContaining({ level: 'warn', text: `{"marker":"${marker}","n":1}` }),
      ]);
    }
  });

  it("shows a thrown error with the user's file and line, under the request id of the 502's body", async () => {
    const marker = `t-${Math.random().toString(36).slice(2)}`;
    const res = await fetch(`${ingress.url}/throw?marker=${marker}`);
    expect(res.status).toBe(502);
    expect(res.headers.get('dcdn-error')).toBe('HOST_HANDLER_ERROR');
    const requestId = res.headers.get('dcdn-request-id')!;
    const body = (await res.json()) as { error: { code: string; requestId: string } };
    expect(body.error).toMatchObject({ code: 'HOST_HANDLER_ERROR', requestId });
    await next((e) => e.requestId === requestId && linesOf(requestId).some((l) => l.level === 'exception'));
    const exception = linesOf(requestId).find((l) => l.level === 'exception')!;
    expect(exception.text).toContain(`Error: boom ${marker}`);
    expect(exception.text).toMatch(new RegExp(`\\bat fail \\((\\S*/)?console-app/worker\\.ts:${THROW_LINE}:\\d+\\)`));
    // Neither the bundle's blob: URL nor the sandbox runtime's own frames.
    expect(exception.text).not.toMatch(/blob:|data:text/);
  });

  it('shows a line written by waitUntil work after the response, under the request id', async () => {
    const marker = `w-${Math.random().toString(36).slice(2)}`;
    const res = await fetch(`${ingress.url}/later?marker=${marker}`);
    expect(await res.text()).toBe('later');
    const requestId = res.headers.get('dcdn-request-id')!;
    await next((e) => e.requestId === requestId && linesOf(requestId).some((l) => l.text === `after the response ${marker}`));
    expect(linesOf(requestId)).toContainEqual(expect.objectContaining({ level: 'info', text: `after the response ${marker}` }));
  });

  it('dcdn tail prints the console line under its request', async () => {
    const child = spawn(process.execPath, [BIN, 'tail', '--ingress', ingress.url, '--token', operator, '--search', 'cli-'], { env: { ...process.env, DCDN_HOME: '/nonexistent-dcdn-home' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // Generous: the CLI starts under tsx, slow on a busy machine.
      await until(() => stderr.includes('tailing'), 45_000, 'dcdn tail connected');
      const marker = `cli-${Math.random().toString(36).slice(2)}`;
      const res = await fetch(`${ingress.url}/log?marker=${marker}`);
      const requestId = res.headers.get('dcdn-request-id')!;
      await until(() => stdout.includes(`marker ${marker}`), 20_000, 'the line in dcdn tail');
      expect(stdout).toMatch(new RegExp(`GET /log\\?marker=${marker} 200 \\d+ms default@\\d+ console-[ab] webrtc id=${requestId}\\n  log +marker ${marker}\\n`));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 90_000);
});
