/**
 * T12 (issue 13, scheduled handlers): two signaling nodes on one Redis and one Postgres, each
 * with ingresses of its own, both running the cron clock: every tick of a once-a-second schedule
 * runs exactly once on the whole cluster (the control store's compare-and-set decides which node
 * fires it), on an echo host, and goes on running once when a node is killed. The last run is
 * the same through either node.
 */
import { expect, it } from 'vitest';
import { waitFor } from './cluster-api.ts';
import { httpJson } from './http-call.ts';
import { clusterScenario } from './scenario.ts';
import { defaultSpec } from './topology.ts';

/** Ticks of one app, counted by scheduledTime. */
function ticks(events: ReadonlyArray<{ app: string; scheduledTime: number }>, app: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const e of events) if (e.app === app) m.set(e.scheduledTime, (m.get(e.scheduledTime) ?? 0) + 1);
  return m;
}

clusterScenario('T12: cron ticks run once for the whole cluster', () => defaultSpec(), (cluster) => {
  it('runs each tick of a once-a-second schedule exactly once across two signaling nodes and three ingresses', async () => {
    const c = cluster();
    await c.deployApi('ticker', { crons: ['* * * * * *'] } as never);
    const seen = await waitFor(async () => {
      const m = ticks(c.hosts.scheduled, 'ticker');
      return m.size >= 8 ? m : null;
    }, 30_000, () => `fewer than 8 ticks ran: ${JSON.stringify([...ticks(c.hosts.scheduled, 'ticker')])}`, 100);
    for (const [time, n] of seen) {
      expect(time % 1000).toBe(0);
      expect(n, `tick ${new Date(time).toISOString()} ran ${n} times`).toBe(1);
    }
    // Both nodes see the same last run (it is in Postgres).
    const views = await Promise.all([0, 1].map(async (node) => {
      const r = await httpJson<{ apps: Array<{ name: string; cron: { schedule: string[]; lastRun: { ok: boolean; host?: string } | null } }> }>(`${c.signals[node]!.url}/v1/apps`, { headers: { authorization: `Bearer ${c.operatorToken}` } });
      return r.json!.apps.find((a) => a.name === 'ticker')!.cron;
    }));
    for (const v of views) expect(v).toMatchObject({ schedule: ['* * * * * *'], lastRun: { ok: true, host: expect.stringMatching(/^h[12]-\d$/) } });
  });

  it('runs dcdn cron trigger through a node without an ingress of its own, over the bus to another node\'s', async () => {
    const c = cluster();
    // i3 is s2's only ingress.
    await c.ingress('i3').proc.kill9();
    await waitFor(async () => ((await c.health(1))?.ingresses ?? 0) === 2 || null, 20_000, () => 'signaling still lists i3', 100);
    const before = c.hosts.scheduled.length;
    const r = await c.dcdnVia(1, 'cron', 'trigger', 'ticker');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ticker: .*\(dcdn cron trigger\) ok on h[12]-\d/);
    expect(c.hosts.scheduled.slice(before).some((e) => e.cron === '* * * * * *' && e.app === 'ticker')).toBe(true);
    // Ticks go on once each meanwhile (s2 claims only after its grace, so s1 takes them).
    const all = ticks(c.hosts.scheduled, 'ticker');
    expect([...all.values()].filter((n) => n !== 1)).toEqual([]);
  });

  it('keeps running each tick once after a signaling node is killed', async () => {
    const c = cluster();
    await c.signals[0]!.proc.kill9();
    const from = Date.now() + 1000;
    const after = await waitFor(async () => {
      const m = new Map([...ticks(c.hosts.scheduled, 'ticker')].filter(([t]) => t >= from));
      return m.size >= 5 ? m : null;
    }, 30_000, () => 'fewer than 5 ticks ran after s1 was killed', 100);
    for (const [time, n] of after) expect(n, `tick ${new Date(time).toISOString()} ran ${n} times`).toBe(1);
    const all = ticks(c.hosts.scheduled, 'ticker');
    expect([...all.values()].every((n) => n === 1)).toBe(true);
  });
});
