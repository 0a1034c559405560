/**
 * The local workflow end to end: the real `dcdn up --app FILE` (its own Chromium, real sockets on
 * free ports, state in a temporary DCDN_HOME) serving a user's project that lives outside this
 * checkout, with its own package.json and node_modules; `dcdn deploy` finding the local network
 * from that state alone; the app reloaded when a file it is built from changes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleApp, bundleAppWithInputs } from '../browser-host/build/bundle.ts';
import { BIN, runDcdn } from './cli.ts';

const CHECKOUT = realpathSync(fileURLToPath(new URL('..', import.meta.url)));
const root = realpathSync(mkdtempSync(join(tmpdir(), 'dcdn-dev-e2e-')));
const project = join(root, 'project');
const home = join(root, 'home');

/** The environment of a shell with no dcdn settings but DCDN_HOME: everything else comes from the local state. */
function bareEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DCDN_HOME: home };
  for (const k of ['DCDN_SIGNAL', 'DCDN_SECRET', 'DCDN_TOKEN', 'DCDN_KV_STORE']) delete env[k];
  return env;
}

function write(rel: string, text: string): string {
  const file = join(project, rel);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

/** `dcdn ARGS` run from the user's project folder, like the user would. */
function dcdnInProject(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: project, env: bareEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The user's project: an app, a module of its own, and a package only its node_modules has. */
function makeProject(): void {
  write('package.json', JSON.stringify({ name: 'my-site', private: true, type: 'module', dependencies: { 'left-pad-user': '1.0.0' } }, null, 2));
  write('node_modules/left-pad-user/package.json', JSON.stringify({ name: 'left-pad-user', version: '1.0.0', type: 'module', main: 'index.js' }));
  write('node_modules/left-pad-user/index.js', "export default function leftPad(s, n, c) { s = String(s); while (s.length < n) s = c + s; return 'left-pad-user:' + s; }\n");
  // Files the bundle never reads: they must cost no watches (30 folders, 300 files).
  for (let d = 0; d < 30; d++) for (let f = 0; f < 10; f++) write(`node_modules/left-pad-user/unused/d${d}/f${f}.js`, `export const x = ${f};\n`);
  write('lib/label.ts', "export const label = 'one';\n");
  write('app.ts', "import leftPad from 'left-pad-user';\nimport { label } from './lib/label.ts';\nexport default { fetch() { return new Response(leftPad(label, 6, '*')); } };\n");
  write('hello.ts', "export default { fetch() { return new Response('hello from dcdn deploy'); } };\n");
  write('pad.ts', "import leftPad from 'left-pad-user';\nexport default { fetch(request: Request) { return new Response(leftPad(new URL(request.url).pathname, 10, '.')); } };\n");
  // msgpackr is in dcdn's own node_modules, not in this project's.
  write('borrows.ts', "import { pack } from 'msgpackr';\nexport default { fetch() { return new Response(pack(1)); } };\n");
}

let up: ChildProcess;
let upExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let out = '';
let err = '';
let ingress = '';

async function get(path: string): Promise<string> {
  const res = await fetch(`${ingress}${path}`);
  return `${res.status} ${await res.text()}`;
}

/** Polls until `check` holds, or fails after `ms` saying what was last seen. */
async function until(what: string, ms: number, check: () => boolean | Promise<boolean>, seen: () => string = () => ''): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`${what} not within ${ms} ms; ${seen()}\n--- dcdn up stderr (tail, requests left out) ---\n${logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - started;
}

/** Polls the ingress until `path` answers `expected`; returns how long it took. */
async function untilServed(path: string, expected: string, ms = 10_000): Promise<number> {
  let last = '';
  return until(`${path} serving ${JSON.stringify(expected)}`, ms, async () => (last = await get(path).catch((e: Error) => e.message)) === `200 ${expected}`, () => `last answer: ${last}`);
}

/** The end of dcdn up's log without the per-request lines. */
const logTail = () => err.split('\n').filter((l) => !/ request method=/.test(l)).slice(-40).join('\n');

const count = (text: string, needle: string) => text.split(needle).length - 1;

async function activeVersion(name: string): Promise<number | undefined> {
  const r = await runDcdn(bareEnv(), ['apps', '--json']);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { apps: Array<{ name: string; activeVersion: number }> }).apps.find((a) => a.name === name)?.activeVersion;
}

beforeAll(async () => {
  // The point of the project's own node_modules is lost if the project sits inside the checkout.
  expect(project.startsWith(CHECKOUT)).toBe(false);
  makeProject();
  up = spawn(process.execPath, [BIN, 'up', '--port', '0', '--signal-port', '0', '--hosts', '1', '--transport', 'websocket', '--app', 'app.ts'], {
    cwd: project,
    env: bareEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  up.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  up.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  upExit = new Promise((resolve) => up.on('exit', (code, signal) => resolve({ code, signal })));
  await until('dcdn up printing that it is up', 60_000, () => {
    if (up.exitCode !== null) throw new Error(`dcdn up exited with ${up.exitCode}:\n${err}`);
    return /dcdn is up: 1\/1 host tab/.test(out);
  });
  ingress = /ingress: +(http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
}, 90_000);

afterAll(async () => {
  if (up && up.exitCode === null && up.signalCode === null) {
    up.kill('SIGTERM');
    const stopped = await Promise.race([upExit, new Promise((r) => setTimeout(() => r(null), 15_000))]);
    if (!stopped) up.kill('SIGKILL');
  }
  rmSync(root, { recursive: true, force: true });
});

describe('bundling for dcdn up', () => {
  it('produces exactly the bundle dcdn deploy uploads, and lists its inputs', async () => {
    const app = join(project, 'app.ts');
    const { code, inputs } = await bundleAppWithInputs(app);
    expect(code).toBe(await bundleApp(app));
    expect(inputs.sort()).toEqual([app, join(project, 'lib/label.ts'), join(project, 'node_modules/left-pad-user/index.js')].sort());
  });
});

describe('dcdn up, locally', () => {
  it('serves the --app module, built with the npm package from its own project', async () => {
    expect(await get('/')).toBe('200 left-pad-user:***one');
    // The state dcdn deploy reads is in DCDN_HOME, not in ~/.dcdn.
    const state = JSON.parse(readFileSync(join(home, 'state.json'), 'utf8')) as { ingress: string; pid: number };
    expect(state).toMatchObject({ ingress, pid: up.pid });
  });

  // Counted from /proc/PID/fdinfo, which only Linux has.
  it.skipIf(process.platform !== 'linux')('watches only the folders of the files the bundle was built from', async () => {
    // One inotify watch per folder read (app.ts's, lib/, the package's), not one per file in
    // the tree: the project has 300 more files in 30 folders under node_modules.
    let watches = 0;
    for (const fd of readdirSync(`/proc/${up.pid}/fdinfo`)) {
      const info = readFileSync(`/proc/${up.pid}/fdinfo/${fd}`, 'utf8');
      watches += count(info, '\ninotify wd:');
    }
    expect(watches).toBeGreaterThanOrEqual(3);
    expect(watches).toBeLessThanOrEqual(6);
  });

  it('deploys another app with no address or token given: both come from the local state', async () => {
    const r = await dcdnInProject(['deploy', 'hello.ts', '--name', 'hello']);
    expect(r.stderr + r.stdout).toContain('deployed hello version 1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${ingress}/@hello/`);
    await untilServed('/@hello/', 'hello from dcdn deploy');
  }, 40_000);

  it("bundles dcdn deploy's npm imports from the user's project, never from dcdn's own node_modules", async () => {
    const r = await dcdnInProject(['deploy', 'pad.ts', '--name', 'pad']);
    expect(r.code).toBe(0);
    await untilServed('/@pad/abc', 'left-pad-user:....../abc');
    // A package only dcdn itself depends on is not there for the user's app, even when the CLI
    // runs from inside the dcdn checkout (runDcdn's working directory).
    const borrowed = await runDcdn(bareEnv(), ['deploy', join(project, 'borrows.ts'), '--name', 'borrows']);
    expect(borrowed.code).toBe(1);
    expect(borrowed.stderr).toContain('dcdn deploy: [APP_BAD_BUNDLE]');
    expect(borrowed.stderr).toContain('borrows.ts does not build; nothing was deployed');
    expect(borrowed.stderr).toMatch(/borrows\.ts:1:\d+: Could not resolve "msgpackr"/);
    expect(await activeVersion('borrows')).toBeUndefined();
  }, 40_000);

  it('reloads the app when its file or a module it imports changes', async () => {
    write('app.ts', "import leftPad from 'left-pad-user';\nimport { label } from './lib/label.ts';\nexport default { fetch() { return new Response(leftPad(label, 6, '-')); } };\n");
    const appMs = await untilServed('/', 'left-pad-user:---one');
    expect(err).toContain('reloaded app.ts: version 2');
    write('lib/label.ts', "export const label = 'two';\n");
    const libMs = await untilServed('/', 'left-pad-user:---two');
    expect(err).toContain('reloaded app.ts: version 3');
    console.log(`reload seen at the ingress after ${appMs} ms (app.ts) and ${libMs} ms (lib/label.ts)`);
  }, 30_000);

  it('makes no new version when a save leaves the bundle as it was', async () => {
    const before = count(err, 'app.ts unchanged: version 3 keeps serving');
    write('lib/label.ts', "export const label = 'two';\n");
    // A file the bundle does not read changes nothing at all.
    write('node_modules/left-pad-user/unused/d0/f0.js', 'export const x = 99;\n');
    await until('the identical rebuild being logged', 5_000, () => count(err, 'app.ts unchanged: version 3 keeps serving') > before);
    expect(await activeVersion('default')).toBe(3);
    expect(err).not.toContain('version 4');
  }, 20_000);

  it('keeps the running version when the app stops building, and says why', async () => {
    write('lib/label.ts', "export const label = 'three'\nexport const = ;\n");
    await until('the build failure being logged', 5_000, () => err.includes('build failed: version 3 keeps serving'));
    expect(err).toMatch(/lib\/label\.ts:2:\d+: /);
    expect(await get('/')).toBe('200 left-pad-user:---two');
    expect(await activeVersion('default')).toBe(3);
    write('lib/label.ts', "export const label = 'four';\n");
    await untilServed('/', 'left-pad-user:--four');
    expect(err).toContain('reloaded app.ts: version 4');
  }, 30_000);

  it('keeps the running version when a save builds but throws as the tab loads it', async () => {
    write('lib/label.ts', "export const label = 'five';\nthrow new Error('forgot to set a config value');\n");
    await until('the load failure being logged', 20_000, () => err.includes('APP_LOAD_FAILED'));
    expect(err).toContain('forgot to set a config value');
    expect(err).toContain('version 4 keeps serving');
    expect(await get('/')).toBe('200 left-pad-user:--four');
    expect(await activeVersion('default')).toBe(4);
    write('lib/label.ts', "export const label = 'six';\n");
    await untilServed('/', 'left-pad-user:---six');
    expect(err).toMatch(/reloaded app\.ts: version 5 .*loaded on/);
  }, 40_000);

  it('shuts down cleanly on SIGTERM', async () => {
    const started = Date.now();
    up.kill('SIGTERM');
    const exit = await Promise.race([upExit, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`dcdn up still running 20 s after SIGTERM:\n${logTail()}`)), 20_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    console.log(`dcdn up exited ${Date.now() - started} ms after SIGTERM`);
    await expect(fetch(`${ingress}/_dcdn/health`)).rejects.toThrow();
  }, 30_000);
});
