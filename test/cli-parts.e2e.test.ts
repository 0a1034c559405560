/**
 * The parts run apart, as an operator runs them on separate machines: `dcdn signal`,
 * `dcdn ingress --signal URL` and `dcdn launch --signal URL` as three real processes of the real
 * CLI, talking only over the network. The ingress and the launcher reach signaling by a name
 * other than `localhost` (one /etc/hosts maps to loopback, else `localhost.`), as they would
 * reach another machine; the ingress is given its ICE address explicitly. Everything stays on
 * 127.0.0.1. Then each part is stopped with SIGTERM: in-flight requests finish within the
 * ingress's grace period, a second signal exits at once, and every part exits cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from './cli.ts';
import { isAlive } from './processes.ts';
import { freePort } from './free-port.ts';

const SECRET = 'cli-parts-e2e-secret-0123456789abcdef';
/** Chromium start, the tab joining, the data channel opening. */
const READY_MS = 45_000;
const home = mkdtempSync(join(tmpdir(), 'dcdn-cli-parts-'));

/** One `dcdn` child process, with its output kept. */
class Part {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;

  constructor(readonly label: string, args: string[]) {
    this.proc = spawn(process.execPath, [BIN, ...args], {
      // Only what the part needs: no DCDN_TOKEN or DCDN_KV_STORE from the caller's shell.
      env: { PATH: process.env.PATH, HOME: home, DCDN_HOME: home, DCDN_SECRET: SECRET, ...(process.env.DCDN_BROWSER ? { DCDN_BROWSER: process.env.DCDN_BROWSER } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Resolves with the first match of `pattern` in stdout or stderr. */
  async waitFor(pattern: RegExp, ms = READY_MS): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = pattern.exec(this.stdout) ?? pattern.exec(this.stderr);
      if (m) return m;
      if (!this.running) throw new Error(`${this.label} exited (${this.proc.exitCode}) before ${pattern}:\n${this.stdout}${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: no ${pattern} within ${ms} ms:\n${this.stdout}${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` and waits for the exit (at most `ms`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
    if (this.running) this.proc.kill(signal);
    return withTimeout(this.exited, ms, `${this.label} to exit after ${signal}`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

/**
 * A name for this machine other than `localhost` that resolves to loopback: one /etc/hosts maps
 * to 127.x (a second machine's name, in effect), else `localhost.`, which Chromium resolves to
 * loopback (glibc may not) but which the launcher's resolver rules list only when asked to.
 */
async function loopbackName(): Promise<string> {
  let hosts = '';
  try {
    hosts = readFileSync('/etc/hosts', 'utf8');
  } catch {
    // no /etc/hosts
  }
  for (const line of hosts.split('\n')) {
    const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (!address?.startsWith('127.')) continue;
    for (const name of names.filter((n) => !n.includes('localhost'))) {
      const resolved = await lookup(name, { family: 4 }).catch(() => null);
      if (resolved?.address.startsWith('127.')) return name;
    }
  }
  return 'localhost.';
}

/** GET `path` on the ingress, with the response's status, dcdn headers and body. */
async function get(base: string, path = '/'): Promise<{ status: number; transport: string | null; host: string | null; body: string }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, transport: res.headers.get('dcdn-transport'), host: res.headers.get('dcdn-host'), body: await res.text() };
}

/** Polls `GET /` until a tab answers it over the given transport. */
async function untilServed(base: string, transport: string, ms = READY_MS): Promise<Awaited<ReturnType<typeof get>>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      last = await get(base);
      if ((last as { status: number; transport: string }).status === 200 && (last as { transport: string }).transport === transport) return last as Awaited<ReturnType<typeof get>>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no 200 over ${transport} from ${base} within ${ms} ms; last: ${JSON.stringify(last)}`);
}

/**
 * Starts `GET /stream?chunks=N&delay=MS` and resolves `started` once its first chunk arrived
 * (so the request is in flight at the tab); `done` says whether the whole body came.
 */
function streamRequest(base: string, chunks: number, delayMs: number) {
  let onFirst!: () => void;
  const started = new Promise<void>((r) => (onFirst = r));
  const done = new Promise<{ status: number; complete: boolean; lines: number; endedAt: number }>((resolve) => {
    httpRequest(`${base}/stream?chunks=${chunks}&delay=${delayMs}`, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        onFirst();
      });
      const finish = (complete: boolean) => resolve({ status: res.statusCode ?? 0, complete, lines: body.split('\n').filter(Boolean).length, endedAt: Date.now() });
      res.on('end', () => finish(res.complete));
      res.on('aborted', () => finish(false));
      res.on('error', () => finish(false));
    })
      .on('error', () => resolve({ status: 0, complete: false, lines: 0, endedAt: Date.now() }))
      .end();
  });
  return { started, done };
}

const parts: Part[] = [];
let name: string;
/** Signaling by `name`, for the launcher (and for the ingresses, when Node resolves the name too). */
let signalUrl: string;
let ingressSignalUrl: string;
/** A second name for loopback, for a --public-ws the tab reaches only through --allow-host. */
let wsName: string | null;
let signal: Part;
let ingress: Part;
let ingressUrl: string;
let launcher: Part;
let chromiumPid: number;

beforeAll(async () => {
  // DCDN_E2E_LOOPBACK_NAME picks the name (e.g. `localhost.` to try the fallback).
  name = process.env.DCDN_E2E_LOOPBACK_NAME || (await loopbackName());
  signal = new Part('dcdn signal', ['signal', '--port', '0']);
  parts.push(signal);
  const port = (await signal.waitFor(/signaling listening on http:\/\/127\.0\.0\.1:(\d+)/))[1]!;
  signalUrl = `http://${name}:${port}`;
  const nodeResolves = await lookup(name, { family: 4 }).then(() => true, () => false);
  ingressSignalUrl = nodeResolves ? signalUrl : `http://127.0.0.1:${port}`;

  ingress = new Part('dcdn ingress', ['ingress', '--signal', ingressSignalUrl, '--port', '0', '--name', 'cli-ingress', '--kv-store', 'none', '--ice-address', '127.0.0.1', '--shutdown-grace', '15000']);
  // The WebSocket fallback's host is one more name the tab must resolve: --allow-host.
  wsName = name === 'localhost.' ? null : 'localhost.';
  launcher = new Part('dcdn launch', ['launch', '--signal', signalUrl, '--count', '1', '--name', 'cli-tab', ...(wsName ? ['--allow-host', wsName] : [])]);
  parts.push(ingress, launcher);
  ingressUrl = (await ingress.waitFor(/ingress listening on (http:\/\/\S+)/))[1]!;
  chromiumPid = Number((await launcher.waitFor(/1 host tab\(s\) running \(pid (\d+)\)/))[1]);
}, 90_000);

afterAll(async () => {
  // Whatever a failed test left running: only the processes this file started, by pid.
  for (const part of parts) if (part.running) part.proc.kill('SIGKILL');
  await Promise.all(parts.map((p) => withTimeout(p.exited, 5000, p.label).catch(() => undefined)));
  if (chromiumPid && isAlive(chromiumPid)) process.kill(chromiumPid, 'SIGKILL');
  rmSync(home, { recursive: true, force: true });
});

describe('dcdn signal, dcdn ingress and dcdn launch as separate processes', () => {
  it(`serve GET / from the launched tab over a WebRTC data channel, signaling reached by name`, async () => {
    const started = Date.now();
    const res = await untilServed(ingressUrl, 'webrtc');
    expect(res.body).toContain('Hello from a browser tab');
    expect(res.host).toBe('cli-tab-1');
    // The launcher let Chromium resolve the --signal host, and only that besides loopback.
    const cmdline = readFileSync(`/proc/${chromiumPid}/cmdline`, 'utf8').split('\0');
    const rules = cmdline.find((a) => a.startsWith('--host-resolver-rules='))?.split(' , EXCLUDE ').slice(1);
    expect(rules).toEqual(['localhost', '*.localhost', '127.*', '::1', '[::1]', name, ...(wsName ? [wsName] : [])]);
    expect(ingress.stderr).toMatch(/data channel open host=cli-tab-1/);
    console.info(`[cli parts e2e] signaling at ${signalUrl}; first webrtc answer ${Date.now() - started} ms after the parts were up`);
  });

  it('an ingress on the WebSocket transport serves the tab at its --public-ws, a host the launcher was told to allow', async (ctx) => {
    if (!wsName) return ctx.skip(); // signaling already uses `localhost.`, the only other loopback name here
    const port = await freePort();
    const ws = new Part('dcdn ingress (websocket)', ['ingress', '--signal', ingressSignalUrl, '--port', String(port), '--name', 'cli-ingress-ws', '--kv-store', 'none', '--transport', 'websocket', '--public-ws', `ws://${wsName}:${port}`]);
    parts.push(ws);
    const url = (await ws.waitFor(/ingress listening on (http:\/\/\S+)/))[1]!;
    const res = await untilServed(url, 'websocket');
    expect(res.host).toBe('cli-tab-1');
    expect(await ws.stop('SIGTERM')).toMatchObject({ code: 0, signal: null });
  });

  it('a second ingress started by the CLI serves the same tab; a second SIGTERM exits it at once (130)', async () => {
    const second = new Part('dcdn ingress #2', ['ingress', '--signal', ingressSignalUrl, '--port', '0', '--name', 'cli-ingress-2', '--kv-store', 'none', '--ice-address', '127.0.0.1', '--shutdown-grace', '30000']);
    parts.push(second);
    const url = (await second.waitFor(/ingress listening on (http:\/\/\S+)/))[1]!;
    await untilServed(url, 'webrtc');
    // 40 lines 250 ms apart: ~10 s, far past the moment of the second signal.
    const long = streamRequest(url, 40, 250);
    await withTimeout(long.started, 10_000, 'the first chunk');
    second.proc.kill('SIGTERM');
    await second.waitFor(/SIGTERM: shutting down \(again to force\)/, 5000);
    await second.waitFor(/draining inFlight=1/, 5000);
    const secondAt = Date.now();
    const exit = await second.stop('SIGTERM', 5000);
    expect(exit).toMatchObject({ code: 130, signal: null });
    expect(exit.at - secondAt).toBeLessThan(3000);
    expect(second.stderr).toMatch(/second SIGTERM: exiting now/);
    const cut = await withTimeout(long.done, 5000, 'the cut stream');
    expect(cut.complete).toBe(false);
    expect(cut.lines).toBeLessThan(40);
  });

  it('SIGTERM on the ingress lets an in-flight request finish within the grace period, then exits 0', async () => {
    // 8 lines 400 ms apart: ~2.8 s after the first, well inside --shutdown-grace 15000.
    const inflight = streamRequest(ingressUrl, 8, 400);
    await withTimeout(inflight.started, 10_000, 'the first chunk');
    const termAt = Date.now();
    ingress.proc.kill('SIGTERM');
    await ingress.waitFor(/draining inFlight=1 graceMs=15000/, 5000);
    // New requests are no longer taken while it drains: refused, or 503 on a kept-alive socket.
    const late = await fetch(`${ingressUrl}/`).then((r) => r.status, () => 'refused');
    expect([503, 'refused']).toContain(late);
    const finished = await withTimeout(inflight.done, 15_000, 'the in-flight stream');
    expect(finished).toMatchObject({ status: 200, complete: true, lines: 8 });
    // No second signal here: that would force the exit (the test above).
    const exit = await withTimeout(ingress.exited, 15_000, 'the ingress to exit');
    expect(exit).toMatchObject({ code: 0, signal: null });
    // It waited for the request, not for the whole grace period.
    expect(finished.endedAt - termAt).toBeGreaterThan(1500);
    expect(exit.at - termAt).toBeLessThan(10_000);
    expect(ingress.stderr).toMatch(/ingress stopped/);
    expect(ingress.stderr).not.toMatch(/grace period over/);
  });

  it('SIGTERM on the launcher closes Chromium and exits 0; then signaling exits 0', async () => {
    const profile = readFileSync(`/proc/${chromiumPid}/cmdline`, 'utf8').split('\0').find((a) => a.startsWith('--user-data-dir='))?.slice('--user-data-dir='.length) ?? '';
    expect(existsSync(profile)).toBe(true);
    const exit = await launcher.stop('SIGTERM', 15_000);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(isAlive(chromiumPid)).toBe(false);
    expect(existsSync(profile)).toBe(false);
    expect(launcher.stderr).toMatch(/SIGTERM: shutting down/);

    expect(await signal.stop('SIGTERM', 10_000)).toMatchObject({ code: 0, signal: null });
    for (const part of parts) expect([part.label, part.running]).toEqual([part.label, false]);
  });
});
