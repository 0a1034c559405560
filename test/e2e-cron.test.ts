/**
 * Cron triggers end to end in real Chromium: signaling's clock claims each tick, asks one of two
 * ingresses, which runs `scheduled()` on one of two host tabs; the handler counts its runs in a
 * KV namespace both ingresses share (Redis), so a tick that ran twice would show. Ticks use the
 * seconds field (`*\/2 * * * * *`, allowed generally and documented) so the test sees several in
 * seconds. Also: `dcdn cron trigger`, `dcdn apps`, a bad expression, a throwing handler recorded
 * with its error and run again at the next tick, and the marker refused on public requests.
 */
import { mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openKvStore } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import { startRedis, type RedisServer } from '../tools/redis.ts';
import { disconnectBrowser } from './browser.ts';
import { runDcdn, type CliResult } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';

const CRON_APP = fileURLToPath(new URL('./fixtures/cron-app.ts', import.meta.url));

let net: Network;
let redis: RedisServer;
let env: NodeJS.ProcessEnv;
const work = mkdtempSync(join(tmpdir(), 'dcdn-cron-e2e-'));

const dcdn = (...args: string[]): Promise<CliResult> => runDcdn(env, args, { timeoutMs: 60_000 });

interface AppView {
  name: string;
  cron: { schedule: string[]; lastRun: { ok: boolean; code?: string; error?: string; host?: string; scheduledTime: number; trigger: string } | null };
}

/** The app as the control API lists it (what `dcdn apps --json` prints), read without a CLI process. */
async function appView(name: string): Promise<AppView> {
  const token = mintToken(net.secret, { role: 'operator', ttlSeconds: 600 });
  const r = await fetch(`${net.urls.http}/v1/apps`, { headers: { authorization: `Bearer ${token}` } });
  expect(r.status).toBe(200);
  return ((await r.json()) as { apps: AppView[] }).apps.find((a) => a.name === name)!;
}

async function runs(app: string): Promise<Map<number, number>> {
  const text = await get(net.ingresses[0]!.url, `/@${app}/runs`);
  const counts = new Map<number, number>();
  for (const key of JSON.parse(text.body) as string[]) {
    const time = Number(key.split(':')[1]);
    counts.set(time, (counts.get(time) ?? 0) + 1);
  }
  return counts;
}

function get(base: string, path: string, method = 'GET'): Promise<{ status: number; body: string; error: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, error: res.headers['dcdn-error'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitFor<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms: ${JSON.stringify(v instanceof Map ? [...v] : v)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  redis = await startRedis();
  net = await startNetwork();
  env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
  for (let i = 0; i < 2; i++) await net.addIngress({ kv: await openKvStore(redis.url) });
  await Promise.all([net.addTab('cron-a'), net.addTab('cron-b')]);
  await until(() => net.ingresses.every((i) => i.pool.size === 2), 30_000, 'both tabs on both ingresses');
}, 120_000);

afterAll(async () => {
  await net?.close();
  await redis?.stop();
  await disconnectBrowser();
});

describe('cron triggers', () => {
  it('runs a schedule once per tick with two hosts and two ingresses up, never twice', async () => {
    const deployed = await dcdn('deploy', CRON_APP, '--name', 'ticker', '--kv', 'RUNS', '--cron', '*/2 * * * * *');
    expect(deployed.code, deployed.stderr + deployed.stdout).toBe(0);
    expect(deployed.stdout).toContain('cron (UTC): */2 * * * * *');
    const seen = await waitFor(() => runs('ticker'), (m) => m.size >= 3, 40_000, 'three ticks');
    for (const [time, n] of seen) {
      expect(time % 2000, `tick ${time} is on the schedule`).toBe(0);
      expect(n, `tick ${new Date(time).toISOString()} ran ${n} times`).toBe(1);
    }
    const view = await appView('ticker');
    expect(view.cron.schedule).toEqual(['*/2 * * * * *']);
    expect(view.cron.lastRun).toMatchObject({ ok: true, trigger: 'schedule', host: expect.stringMatching(/^cron-[ab]$/) });
    const listing = await dcdn('apps');
    expect(listing.stdout).toMatch(/cron: \*\/2 \* \* \* \* \* \(UTC\); last run .* ok on cron-[ab]/);
    // A redeploy that says nothing of crons keeps the schedule (through the API, as dcdn deploy
    // without --cron sends it); --cron none clears it.
    const kept = await fetch(`${net.urls.http}/v1/apps/ticker`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${mintToken(net.secret, { role: 'operator', ttlSeconds: 600 })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ code: await (await fetch(`${net.urls.http}/v1/apps/ticker/versions/1/code`, { headers: { authorization: `Bearer ${mintToken(net.secret, { role: 'operator', ttlSeconds: 600 })}` } })).text(), config: { kv: ['RUNS'] }, check: false }),
    });
    expect(kept.status).toBe(201);
    expect((await appView('ticker')).cron.schedule).toEqual(['*/2 * * * * *']);
    const cleared = await dcdn('deploy', CRON_APP, '--name', 'ticker', '--kv', 'RUNS', '--cron', 'none');
    expect(cleared.code, cleared.stderr + cleared.stdout).toBe(0);
    expect((await appView('ticker')).cron.schedule).toEqual([]);
    const after = await runs('ticker');
    for (const n of after.values()) expect(n).toBe(1);
  }, 120_000);

  it('runs a handler once now with dcdn cron trigger and prints the outcome', async () => {
    // ticker's schedule was cleared above: only the trigger runs it now.
    const before = (await runs('ticker')).size;
    const r = await dcdn('cron', 'trigger', 'ticker');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ticker: .*\(dcdn cron trigger\) ok on cron-[ab]/);
    expect((await runs('ticker')).size).toBe(before + 1);
    expect((await appView('ticker')).cron.lastRun).toMatchObject({ ok: true, trigger: 'manual' });
    const metrics = (await net.signal.metrics!.render()).body;
    expect(metrics).toMatch(/dcdn_signaling_cron_runs_total\{outcome="ok",trigger="manual"\} 1/);
    expect(metrics).toMatch(/dcdn_signaling_cron_runs_total\{outcome="ok",trigger="schedule"\} [3-9]/);
  }, 60_000);

  it('refuses an expression that is not cron with APP_BAD_CRON naming it', async () => {
    const r = await dcdn('deploy', CRON_APP, '--name', 'badcron', '--kv', 'RUNS', '--cron', '61 * * * *');
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('APP_BAD_CRON');
    expect(r.stderr + r.stdout).toContain('61 * * * *');
  }, 60_000);

  it('records a throwing handler with its error and stack, and runs it again at the next tick', async () => {
    const deployed = await dcdn('deploy', CRON_APP, '--name', 'thrower', '--kv', 'RUNS', '--var', 'MODE=throw', '--cron', '*/2 * * * * *');
    expect(deployed.code, deployed.stderr + deployed.stdout).toBe(0);
    const first = await waitFor(() => appView('thrower'), (v) => v.cron.lastRun !== null, 20_000, 'a first run');
    expect(first.cron.lastRun).toMatchObject({ ok: false, code: 'HOST_HANDLER_ERROR' });
    expect(first.cron.lastRun!.error).toContain(`scheduled failure at ${first.cron.lastRun!.scheduledTime}`);
    expect(first.cron.lastRun!.error).toMatch(/\n\s+at /);
    const next = await waitFor(() => appView('thrower'), (v) => (v.cron.lastRun?.scheduledTime ?? 0) > first.cron.lastRun!.scheduledTime, 20_000, 'the next tick');
    expect(next.cron.lastRun).toMatchObject({ ok: false, code: 'HOST_HANDLER_ERROR' });
    const trigger = await dcdn('cron', 'trigger', 'thrower');
    expect(trigger.code).toBe(1);
    expect(trigger.stdout).toContain('failed HOST_HANDLER_ERROR');
  }, 90_000);

  it('refuses the scheduled-event marker on public requests, before any host', async () => {
    const before = await runs('ticker');
    const r = await get(net.ingresses[0]!.url, '/@ticker/', 'DCDN-SCHEDULED');
    expect(r.status).toBe(501);
    expect(r.error ?? r.body).toContain('INGRESS_NOT_IMPLEMENTED');
    expect(await runs('ticker')).toEqual(before);
  });
});
