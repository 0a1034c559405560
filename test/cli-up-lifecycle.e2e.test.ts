/**
 * `dcdn up` as an operator runs it, a real process with real Chromium tabs (issue 15 items 9
 * and 10, issue 10 item 8):
 * - Ctrl-C (SIGINT to the whole process group, as a terminal sends it) lets a streaming
 *   response in flight finish, then exits 0. Before: puppeteer's own handler killed Chromium
 *   and exited 130 at once, cutting the stream.
 * - `kill -9` of `dcdn up` takes its Chromium with it. Before: every process of the browser
 *   kept running.
 * - A plain `dcdn up` after `dcdn up --app X` serves the demo again, and says what it serves.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startDcdn, type DcdnProcess } from './dcdn-process.ts';

const root = mkdtempSync(join(tmpdir(), 'dcdn-up-lifecycle-'));
const running: DcdnProcess[] = [];

afterAll(async () => {
  await Promise.all(running.map((p) => p.kill()));
  rmSync(root, { recursive: true, force: true });
});

/**
 * `dcdn up` with a DCDN_HOME and a TMPDIR of its own: Chromium's profile is made under TMPDIR,
 * so the run's browser processes are those whose command line names it.
 */
async function up(name: string, args: string[]): Promise<{ p: DcdnProcess; ingress: string; tmp: string; home: string }> {
  const { home, tmp } = runDirs(name);
  const p = startDcdn(['up', '--port', '0', '--signal-port', '0', '--transport', 'websocket', ...args], { PATH: process.env.PATH, HOME: home, DCDN_HOME: home, TMPDIR: tmp });
  running.push(p);
  const ingress = (await p.waitFor(/ingress: +(http:\/\/127\.0\.0\.1:\d+)/, 'dcdn up printing its ingress'))[1]!;
  await p.waitFor(/dcdn is up/, 'dcdn up printing that it is up');
  return { p, ingress, tmp, home };
}

/** A DCDN_HOME and a TMPDIR for the run `name`. */
function runDirs(name: string): { home: string; tmp: string } {
  const home = join(root, name, 'home');
  const tmp = join(root, name, 'tmp');
  mkdirSync(home, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  return { home, tmp };
}

/**
 * Reads a streamed response, calling `stop` once its first line has arrived (the response is
 * then in flight on the tab); resolves with the whole body once it ends.
 */
async function readAcross(res: Response, stop: () => void): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let body = '';
  let stopped = false;
  for (;;) {
    if (!stopped && body.includes('\n')) {
      stop();
      stopped = true;
    }
    const { value, done } = await reader.read();
    if (done) break;
    body += decoder.decode(value, { stream: true });
  }
  if (!stopped) stop();
  return body;
}

/** Pids of processes (other than this one) whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch (err) {
      // Exited between the listing and the read.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  return pids;
}

async function until(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(process.platform !== 'linux')('dcdn up, run and stopped as an operator does', () => {
  it('drains on Ctrl-C: a stream in flight finishes, then it exits 0', async () => {
    const { p, ingress, tmp } = await up('drain', ['--hosts', '1']);
    const res = await fetch(`${ingress}/stream?chunks=8&delay=250`);
    expect(res.status).toBe(200);
    const body = await readAcross(res, () => p.signalGroup('SIGINT'));
    expect(body.trim().split('\n')).toHaveLength(8);
    expect((await p.exit).code).toBe(0);
    expect(p.stderr()).toContain('SIGINT: shutting down');
    // And its Chromium is gone with it.
    await until('Chromium of the drained run exiting', () => processesMentioning(tmp).length === 0);
  }, 120_000);

  it('dcdn launch drains on Ctrl-C too: its tabs are marked draining, the stream finishes, exit 0', async () => {
    const secret = 'lifecycle-secret-0123456789abcdef';
    const { home, tmp } = runDirs('launch');
    const env = { PATH: process.env.PATH, HOME: home, DCDN_HOME: home, TMPDIR: tmp, DCDN_SECRET: secret };
    const net = startDcdn(['up', '--hosts', '0', '--port', '0', '--signal-port', '0', '--transport', 'websocket'], env);
    running.push(net);
    await net.waitFor(/dcdn is up/, 'dcdn up --hosts 0');
    const ingress = /ingress: +(http:\/\/127\.0\.0\.1:\d+)/.exec(net.stdout())![1]!;
    const signal = /signaling: +(http:\/\/127\.0\.0\.1:\d+)/.exec(net.stdout())![1]!;
    const launch = startDcdn(['launch', '--signal', signal, '--count', '1'], env);
    running.push(launch);
    await launch.waitFor(/1 host tab\(s\) running/, 'dcdn launch with its tab');
    let res: Response | undefined;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      res = await fetch(`${ingress}/stream?chunks=8&delay=250`);
      if (res.status === 200) break;
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(res!.status).toBe(200);
    const body = await readAcross(res!, () => launch.signalGroup('SIGINT'));
    expect(body.trim().split('\n')).toHaveLength(8);
    expect((await launch.exit).code).toBe(0);
    expect(launch.stderr()).toMatch(/tabs marked draining tabs=1/);
    expect(launch.stderr()).toMatch(/tabs drained/);
    net.signalGroup('SIGTERM');
    expect((await net.exit).code).toBe(0);
    await until('Chromium of the launcher exiting', () => processesMentioning(tmp).length === 0);
  }, 150_000);

  it('takes its Chromium along when killed with SIGKILL', async () => {
    const { p, tmp } = await up('kill9', ['--hosts', '1']);
    // Positive sign first: this run's browser processes exist and are found by their profile.
    expect(processesMentioning(tmp).length).toBeGreaterThan(0);
    process.kill(p.child.pid!, 'SIGKILL');
    await p.exit;
    await until('every Chromium process of the killed run exiting', () => processesMentioning(tmp).length === 0);
  }, 120_000);

  it('serves the demo app without --app, after a run with --app', async () => {
    const project = join(root, 'project');
    mkdirSync(project, { recursive: true });
    const app = join(project, 'dev.ts');
    writeFileSync(app, "export default { fetch() { return new Response('development app'); } };\n");
    const dev = await up('apps', ['--hosts', '0', '--app', app, '--no-watch']);
    expect(dev.p.stdout()).toMatch(new RegExp(`serving: +default@\\d+: ${app.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(from --app\\)`));
    dev.p.signalGroup('SIGTERM');
    expect((await dev.p.exit).code).toBe(0);

    // Same DCDN_HOME (the app store is kept), no --app.
    const home = dev.home;
    const tmp = join(root, 'apps', 'tmp2');
    mkdirSync(tmp, { recursive: true });
    const plain = startDcdn(['up', '--port', '0', '--signal-port', '0', '--transport', 'websocket', '--hosts', '1'], { PATH: process.env.PATH, HOME: home, DCDN_HOME: home, TMPDIR: tmp });
    running.push(plain);
    const ingress = (await plain.waitFor(/ingress: +(http:\/\/127\.0\.0\.1:\d+)/, 'the plain run printing its ingress'))[1]!;
    await plain.waitFor(/dcdn is up: 1\/1/, 'the plain run with its tab');
    expect(plain.stdout()).toMatch(/serving: +default@\d+: the demo app \(built in\)/);
    const res = await fetch(`${ingress}/`);
    expect(await res.text()).toMatch(/^Hello from a browser tab\./);
    plain.signalGroup('SIGTERM');
    expect((await plain.exit).code).toBe(0);
  }, 180_000);
});
