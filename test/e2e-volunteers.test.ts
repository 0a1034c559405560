/**
 * Volunteer hosts end to end: a real Chromium tab opens the join page from a `dcdn invite`
 * link and serves the apps deployed with `--volunteers`, beside an operator's headless host;
 * the real CLI drains and bans; a Node host reports a capability a deploy requires.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import { disconnectBrowser, newPage } from './browser.ts';
import { BIN, runDcdn, type CliResult } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';
import { startNodeHost, type NodeHost } from './node-host.ts';

const HEADERS_APP = fileURLToPath(new URL('./fixtures/headers-app.ts', import.meta.url));

let net: Network;
let ingress: Ingress;
let env: NodeJS.ProcessEnv;
let volunteer: Page;
let inviteLink: string;
const work = mkdtempSync(join(tmpdir(), 'dcdn-volunteers-e2e-'));

async function dcdn(...args: string[]): Promise<CliResult> {
  return runDcdn(env, args);
}

async function ok(...args: string[]): Promise<string> {
  const r = await dcdn(...args);
  if (r.code !== 0) throw new Error(`dcdn ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

interface Served {
  status: number;
  host: string | null;
  code: string | null;
  body: { cookie: string | null; authorization: string | null; accept: string | null; env: string[] } | null;
}

async function get(app: string, headers: Record<string, string> = {}): Promise<Served> {
  const res = await fetch(`${ingress.url}/@${app}/`, { headers });
  const text = await res.text();
  return { status: res.status, host: res.headers.get('dcdn-host'), code: res.headers.get('dcdn-error'), body: res.status === 200 ? JSON.parse(text) : null };
}

/** The host's signaling id, as `dcdn hosts list` shows it. */
async function hostId(name: string): Promise<string> {
  const list = JSON.parse(await ok('hosts', 'list', '--json')) as Array<{ id: string; name: string }>;
  const found = list.find((h) => h.name === name);
  if (!found) throw new Error(`no host named ${name} in ${JSON.stringify(list.map((h) => h.name))}`);
  return found.id;
}

async function joinAsVolunteer(link: string, name: string): Promise<Page> {
  const page = await newPage();
  page.on('pageerror', (err) => console.error(`[${name}] ${String(err)}`));
  await page.goto(`${link}&name=${name}`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', { timeout: 15_000, polling: 100 });
  await page.click('#toggle');
  return page;
}

const names = () => ingress.pool.list().map((h) => h.name).sort();

/**
 * Resolves when signaling answers a connection with `code` (an HTTP refusal of the WebSocket
 * upgrade, or an error message on the socket): the positive sign that a join was refused,
 * so a test need not wait an arbitrary time before checking that the host stayed out.
 */
function refusalSeen(code: string): { seen: Promise<void>; stop: () => void } {
  const server = net.signal.app.server;
  let resolve!: () => void;
  const seen = new Promise<void>((r) => (resolve = r));
  const watch = (_req: unknown, socket: { write: (...args: unknown[]) => boolean }) => {
    const write = socket.write;
    socket.write = function (this: unknown, ...args: unknown[]) {
      if (String(args[0]).includes(code)) resolve();
      return write.apply(this, args);
    };
  };
  server.prependListener('upgrade', watch);
  return { seen, stop: () => void server.off('upgrade', watch) };
}

beforeAll(async () => {
  net = await startNetwork();
  env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
  await ok('deploy', HEADERS_APP, '--name', 'open', '--volunteers');
  await ok('deploy', HEADERS_APP, '--name', 'closed');
  await ok('deploy', HEADERS_APP, '--name', 'gpu', '--volunteers', '--require', 'webgpu');
  const put = execFile(process.execPath, [BIN, 'secret', 'put', 'open', 'API_KEY'], { env });
  put.stdin!.end('s3cret');
  await new Promise((resolve) => put.on('exit', resolve));
  // The Node host below speaks WebSocket only: fall back to it quickly.
  ingress = await net.addIngress({ rtcOpenTimeoutMs: 2000 });
  await net.addTab('op');
  inviteLink = (await ok('invite', '--apps', 'open,gpu', '--ttl', '1h')).trim();
  volunteer = await joinAsVolunteer(inviteLink, 'vol-1');
  await until(() => names().join() === 'op,vol-1', 20_000, 'operator and volunteer hosts in the pool');
}, 90_000);

afterAll(async () => {
  if (volunteer && !volunteer.isClosed()) await volunteer.close();
  await net?.close();
  await disconnectBrowser();
});

describe('volunteer hosts', () => {
  it('are listed as volunteers with their invite scope', async () => {
    const list = JSON.parse(await ok('hosts', 'list', '--json')) as Array<{ name: string; volunteer: boolean; apps: string[] | null; ingresses: string[] }>;
    // One ingress in this network: placement puts every host on it.
    expect(list.find((h) => h.name === 'vol-1')).toMatchObject({ volunteer: true, apps: ['open', 'gpu'], ingresses: ['ingress-1'] });
    expect(list.find((h) => h.name === 'op')).toMatchObject({ volunteer: false, apps: null, ingresses: ['ingress-1'] });
    expect(await ok('hosts', 'list')).toMatch(/vol-1\s+volunteer \(open,gpu\)\s+serving\s+ingress-1\s/);
  });

  it('serve a --volunteers app from an invite link, never seeing cookies, credentials or secrets', async () => {
    const op = await hostId('op');
    await ok('hosts', 'drain', op.slice(0, 8));
    await until(() => ingress.pool.list().some((h) => h.name === 'op' && h.traits.draining), 5000, 'the operator host drained');
    try {
      const secretHeaders = { cookie: 'session=abc', authorization: 'Bearer visitor-token', accept: 'application/json' };
      for (let i = 0; i < 5; i++) {
        const r = await get('open', secretHeaders);
        expect(r).toMatchObject({ status: 200, host: 'vol-1' });
        expect(r.body).toEqual({ cookie: null, authorization: null, accept: 'application/json', env: [] });
      }
      // The operator's own host gets everything, secrets included.
      await ok('hosts', 'resume', op.slice(0, 8));
      await until(() => ingress.pool.list().some((h) => h.name === 'op' && !h.traits.draining), 5000, 'the operator host resumed');
      const seen = await Promise.all(Array.from({ length: 12 }, () => get('open', secretHeaders)));
      const byOp = seen.filter((r) => r.host === 'op');
      expect(byOp.length).toBeGreaterThan(0);
      for (const r of byOp) expect(r.body).toEqual({ cookie: 'session=abc', authorization: 'Bearer visitor-token', accept: 'application/json', env: ['API_KEY'] });
    } finally {
      await dcdn('hosts', 'resume', op.slice(0, 8));
    }
  });

  it('never get an app deployed without --volunteers', async () => {
    const op = await hostId('op');
    const all = await Promise.all(Array.from({ length: 20 }, () => get('closed')));
    expect(new Set(all.map((r) => r.host))).toEqual(new Set(['op']));
    await ok('hosts', 'drain', op.slice(0, 8));
    try {
      await until(() => ingress.pool.list().some((h) => h.name === 'op' && h.traits.draining), 5000, 'drained');
      const refused = await get('closed');
      expect(refused).toMatchObject({ status: 503, code: 'INGRESS_NO_HOST' });
    } finally {
      await ok('hosts', 'resume', op.slice(0, 8));
    }
  });

  it('route a deploy that requires webgpu only to a host reporting it', async () => {
    // Neither headless tab has a WebGPU adapter here.
    expect(await get('gpu')).toMatchObject({ status: 503, code: 'INGRESS_NO_HOST' });
    let gpuHost: NodeHost | null = null;
    try {
      gpuHost = startNodeHost({
        signalUrl: net.urls.ws,
        token: mintToken(net.secret, { role: 'host', sub: 'gpu-box', ttlSeconds: 600 }),
        name: 'gpu-box',
        capabilities: ['webgpu'],
        onstream: (stream) => {
          stream.respond({ status: 200, headers: [['content-type', 'application/json']] });
          void stream.write(new TextEncoder().encode(JSON.stringify({ cookie: null, authorization: null, accept: null, env: ['GPU'] }))).then(() => stream.end());
        },
      });
      await until(() => names().includes('gpu-box'), 15_000, 'the webgpu host in the pool');
      const served = await Promise.all(Array.from({ length: 6 }, () => get('gpu')));
      expect(new Set(served.map((r) => r.host))).toEqual(new Set(['gpu-box']));
      // Apps without the requirement still go to every host that may run them.
      expect(new Set((await Promise.all(Array.from({ length: 12 }, () => get('closed')))).map((r) => r.host))).toContain('op');
    } finally {
      gpuHost?.close();
    }
  });

  it('are warned, at invite time and on the page, about an app deployed without --volunteers', async () => {
    const r = await dcdn('invite', '--apps', 'closed', '--ttl', '1h');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: closed was deployed without --volunteers/);
    const page = await joinAsVolunteer(r.stdout.trim(), 'vol-closed');
    try {
      // Not "serving": the page says there is nothing to serve, and why.
      await page.waitForFunction(() => document.body.dataset.state === 'idle', { timeout: 15_000, polling: 100 });
      expect(await page.$eval('#s-apps', (el) => el.textContent)).toContain('Cannot serve closed');
      expect(await page.$eval('#summary', (el) => el.textContent)).toMatch(/nothing to serve/);
    } finally {
      await page.close();
    }
    // An invite for an app that is open to volunteers has no warning.
    expect((await dcdn('invite', '--apps', 'open', '--ttl', '1h')).stderr).not.toMatch(/warning/);
  }, 60_000);

  it('are refused with an expired invite', async () => {
    const expired = mintToken(net.secret, { role: 'host', sub: 'late', ttlSeconds: 60, scope: ['volunteer'] }, Math.floor(Date.now() / 1000) - 3600);
    // The token is checked before the upgrade: a plain request shows the answer a tab gets.
    const res = await fetch(`${net.urls.http}/v1/signal`, { headers: { authorization: `Bearer ${expired}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('dcdn-error')).toBe('SIG_TOKEN_EXPIRED');
  });

  it('leave the rotation within 3 s when the tab closes, failing at most what was in flight on it', async () => {
    // A request whose head had not come back is retried on another host (GET); one whose body
    // was streaming when the tab closed can only be cut (its status was already sent): the
    // client sees the connection fail. Nothing else may fail, and nothing goes to the tab after.
    const results: Served[] = [];
    let cut = 0;
    let stop = false;
    const concurrency = 4;
    const load = (async () => {
      while (!stop) {
        const batch = await Promise.all(Array.from({ length: concurrency }, () => get('open').catch(() => null)));
        for (const r of batch) if (r) results.push(r);
        else cut++;
      }
    })();
    await until(() => results.some((r) => r.host === 'vol-1'), 10_000, 'the volunteer serving under load');
    const closedAt = Date.now();
    await volunteer.close();
    await until(() => !names().includes('vol-1'), 3000, 'the volunteer out of the pool within 3 s');
    const gone = Date.now() - closedAt;
    const after = results.length;
    await until(() => results.length >= after + 20, 10_000, 'more requests after the volunteer left');
    stop = true;
    await load;
    const failed = results.filter((r) => r.status !== 200);
    console.info(`[volunteers e2e] closed tab out of the pool after ${gone} ms; ${results.length + cut} requests, ${cut} cut mid-body, ${failed.length} failed with a status`);
    expect(failed).toEqual([]);
    expect(cut).toBeLessThanOrEqual(concurrency);
    expect(results.slice(after + concurrency).every((r) => r.host === 'op')).toBe(true);
  }, 60_000);

  it('can be banned, and then cannot come back', async () => {
    const page = await joinAsVolunteer(inviteLink, 'vol-2');
    try {
      await until(() => names().includes('vol-2'), 15_000, 'vol-2 in the pool');
      const id = await hostId('vol-2');
      expect(await ok('hosts', 'ban', id.slice(0, 8), '--reason', 'test')).toContain('banned');
      await until(() => !names().includes('vol-2'), 3000, 'the banned host out of the pool');
      expect(await ok('hosts', 'bans')).toMatch(/host .*test/);
      // Reloading and joining again is refused: the tab id and the address are banned.
      const refusal = refusalSeen('SIG_BANNED');
      try {
        await page.reload();
        await page.waitForFunction(() => document.body.dataset.state === 'ready', { timeout: 15_000, polling: 100 });
        await page.click('#toggle');
        await refusal.seen;
      } finally {
        refusal.stop();
      }
      expect(names()).not.toContain('vol-2');
    } finally {
      await page.close();
      const bans = (await ok('hosts', 'bans', '--json').then((t) => JSON.parse(t))) as Array<{ id: string }>;
      for (const b of bans) await ok('hosts', 'unban', b.id);
    }
  }, 60_000);
});
