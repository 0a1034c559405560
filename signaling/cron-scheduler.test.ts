/**
 * The scheduling logic with fake timers over a real (in-memory SQLite) control store: ticks run
 * once however many schedulers (nodes) share the store, never before the deploy, the latest
 * missed tick once after a restart, and failures wait for the next tick. The dispatch to an
 * ingress is a stub here (the end-to-end test drives the real one).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AppManifestEntry } from './app-store.ts';
import type { CronOutcome } from './cron-dispatch.ts';
import { CronScheduler, type CronSchedulerOptions } from './cron-scheduler.ts';
import { SqliteControlStore } from './sqlite-control-store.ts';

const MINUTE = 60_000;
const T0 = Date.parse('2026-01-01T00:00:30.000Z');
const code = 'export default { fetch() { return new Response("x"); }, scheduled() {} };';

let store: SqliteControlStore;
const schedulers: CronScheduler[] = [];

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  store = SqliteControlStore.open(':memory:');
});
afterEach(async () => {
  for (const s of schedulers.splice(0)) await s.stop();
  await store.close();
  vi.useRealTimers();
});

interface Calls {
  runs: Array<{ app: string; cron: string; time: number }>;
}

function node(calls: Calls, over: Partial<CronSchedulerOptions> & { outcome?: (n: number) => Partial<CronOutcome> } = {}): CronScheduler {
  let manifest: AppManifestEntry[] = [];
  const refresh = () => store.manifest().then((m) => (manifest = m));
  void refresh();
  store.watch(() => void refresh().then(() => s.poke()));
  const s = new CronScheduler({
    store,
    apps: () => manifest,
    dispatch: {
      hasIngress: true,
      async run(app, cron, time) {
        calls.runs.push({ app, cron, time });
        return { ok: true, code: '', error: '', host: 'tab-1', ingress: 'ingress-1', ms: 3, ...over.outcome?.(calls.runs.length) };
      },
    },
    log: () => {},
    ...over,
  });
  schedulers.push(s);
  return s;
}

async function deploy(name: string, crons: string[]): Promise<void> {
  await store.deploy(name, code, '', { crons });
  await vi.advanceTimersByTimeAsync(0);
}

describe('CronScheduler', () => {
  it('runs each tick once although two nodes share the store', async () => {
    const calls: Calls = { runs: [] };
    await Promise.all([node(calls).start(), node(calls).start()]);
    await deploy('job', ['* * * * *']);
    await vi.advanceTimersByTimeAsync(5 * MINUTE);
    expect(calls.runs.map((r) => new Date(r.time).toISOString())).toEqual([1, 2, 3, 4, 5].map((m) => `2026-01-01T00:0${m}:00.000Z`));
    expect(calls.runs.every((r) => r.app === 'job' && r.cron === '* * * * *')).toBe(true);
    expect((await store.cronStates())[0]).toMatchObject({ app: 'job', lastTick: Date.parse('2026-01-01T00:05:00.000Z'), lastRun: { ok: true, host: 'tab-1', trigger: 'schedule' } });
  });

  it('never runs a tick from before the deploy, and follows seconds fields', async () => {
    const calls: Calls = { runs: [] };
    await node(calls).start();
    await deploy('fast', ['*/10 * * * * *']);
    expect(calls.runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(calls.runs.map((r) => r.time - T0)).toEqual([10_000, 20_000, 30_000]);
  });

  it('lets a node with an ingress win a tick; one without claims only after the grace, and records CRON_NO_INGRESS when none can', async () => {
    const calls: Calls = { runs: [] };
    const lonely: Calls = { runs: [] };
    const without = node(lonely, { claimGraceMs: 2000, dispatch: { hasIngress: false, run: async (app, cron, time) => (lonely.runs.push({ app, cron, time }), { ok: false, code: 'CRON_NO_INGRESS', error: 'no ingress', host: '', ingress: '', ms: 0 }) } });
    await Promise.all([without.start(), node(calls).start()]);
    await deploy('job', ['* * * * *']);
    await vi.advanceTimersByTimeAsync(MINUTE);
    await vi.advanceTimersByTimeAsync(3000);
    expect(calls.runs).toHaveLength(1);
    expect(lonely.runs).toHaveLength(0);
    // The node with the ingress goes away: the other claims the next tick after its grace.
    await schedulers[1]!.stop();
    await vi.advanceTimersByTimeAsync(28_000); // 00:02:01: the tick is due, the grace not over
    expect(lonely.runs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1500);
    expect(lonely.runs).toHaveLength(1);
    expect((await store.cronStates())[0]!.lastRun).toMatchObject({ ok: false, code: 'CRON_NO_INGRESS' });
  });

  it('runs only the latest missed tick after a restart, once', async () => {
    const calls: Calls = { runs: [] };
    await deploy('job', ['* * * * *']);
    expect(await store.claimCronTick('job', Date.parse('2026-01-01T00:00:00.000Z'))).toBe(true);
    await vi.advanceTimersByTimeAsync(10 * MINUTE); // everything down meanwhile
    await Promise.all([node(calls).start(), node(calls).start()]);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls.runs.map((r) => new Date(r.time).toISOString())).toEqual(['2026-01-01T00:10:00.000Z']);
    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(calls.runs).toHaveLength(2);
  });

  it('records a failed run with its error and runs again at the next tick, not before', async () => {
    const calls: Calls = { runs: [] };
    await node(calls, { outcome: (n) => (n === 1 ? { ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom\n    at scheduled (job.ts:2:9)' } : {}) }).start();
    await deploy('job', ['* * * * *']);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(calls.runs).toHaveLength(1);
    expect((await store.cronStates())[0]!.lastRun).toMatchObject({ ok: false, code: 'HOST_HANDLER_ERROR', error: expect.stringContaining('at scheduled') });
    await vi.advanceTimersByTimeAsync(59_000);
    expect(calls.runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.runs).toHaveLength(2);
    expect((await store.cronStates())[0]!.lastRun).toMatchObject({ ok: true });
  });

  it('stops when the schedule is removed, and triggers a manual run with the first expression', async () => {
    const calls: Calls = { runs: [] };
    const s = node(calls);
    await s.start();
    await deploy('job', ['0 * * * *', '30 * * * *']);
    const entry = (await store.manifest())[0]!;
    const run = await s.trigger(entry);
    expect(run).toMatchObject({ ok: true, trigger: 'manual', cron: '0 * * * *', scheduledTime: Date.now() });
    await deploy('job', []);
    await vi.advanceTimersByTimeAsync(120 * MINUTE);
    expect(calls.runs).toHaveLength(1);
  });
});
