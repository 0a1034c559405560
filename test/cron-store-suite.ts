/**
 * What every control store does for cron triggers (signaling/control-store.ts): schedules kept
 * with their version, checked with croner, and the per-tick compare-and-set that makes a tick
 * run once across nodes and restarts. Called by each backend's test file with the same harness
 * as the conformance suite.
 */
import { describe, expect, it } from 'vitest';
import type { ControlStore, CronRun } from '../signaling/control-store.ts';
import { bundle, codeOf, harnessPerTest, type ControlStoreHarness } from './control-store-suite.ts';

const run = (over: Partial<CronRun> = {}): CronRun => ({ at: '2026-01-01T00:01:00.000Z', scheduledTime: 60_000, cron: '* * * * *', trigger: 'schedule', ok: true, host: 'h1', ms: 5, ...over });

export function cronStoreSuite(name: string, make: () => Promise<ControlStoreHarness>): void {
  describe(`${name} (cron state)`, () => {
    let h: ControlStoreHarness;
    let store: ControlStore;
    harnessPerTest(make, (opened) => {
      h = opened;
      store = opened.store;
    });

    it('keeps a schedule with its version, and a config without one reads as before', async () => {
      await store.deploy('plain', bundle('p'), '', {});
      const v = await store.deploy('job', bundle('j'), '', { crons: ['*/5 * * * *', '0  0 * * MON', '*/5 * * * *'] });
      expect(v.config.crons).toEqual(['*/5 * * * *', '0 0 * * MON']);
      const manifest = await store.manifest();
      expect(manifest.find((a) => a.name === 'job')!.config.crons).toEqual(['*/5 * * * *', '0 0 * * MON']);
      expect(Object.keys(manifest.find((a) => a.name === 'plain')!.config)).not.toContain('crons');
      // A rollback restores the version's schedule.
      await store.deploy('job', bundle('j2'), '', {});
      expect((await store.manifest()).find((a) => a.name === 'job')!.config.crons).toBeUndefined();
      await store.rollback('job');
      expect((await store.manifest()).find((a) => a.name === 'job')!.config.crons).toEqual(['*/5 * * * *', '0 0 * * MON']);
    });

    it('refuses an expression croner cannot read with APP_BAD_CRON, deploying nothing', async () => {
      expect(await codeOf(store.deploy('job', bundle('j'), '', { crons: ['61 * * * *'] }))).toBe('APP_BAD_CRON');
      expect(await codeOf(store.deploy('job', bundle('j'), '', { crons: ['* * * * * * *'] }))).toBe('APP_BAD_CRON');
      expect(await codeOf(store.deploy('job', bundle('j'), '', { crons: [''] }))).toBe('APP_BAD_CONFIG');
      expect(await store.list()).toEqual([]);
    });

    it('lets a tick be claimed once: the same or an earlier tick again is refused, a later one taken', async () => {
      await store.deploy('job', bundle('j'), '', { crons: ['* * * * *'] });
      expect(await store.claimCronTick('job', 60_000)).toBe(true);
      expect(await store.claimCronTick('job', 60_000)).toBe(false);
      expect(await store.claimCronTick('job', 0 + 1)).toBe(false);
      const other = await h.another();
      expect(await other.claimCronTick('job', 60_000)).toBe(false);
      expect(await other.claimCronTick('job', 120_000)).toBe(true);
      expect(await store.claimCronTick('job', 120_000)).toBe(false);
      expect(await store.claimCronTick('nope', 60_000)).toBe(false);
    });

    it('gives each tick to exactly one of two nodes claiming it at the same moment', async () => {
      await store.deploy('job', bundle('j'), '', { crons: ['* * * * *'] });
      const other = await h.another();
      for (let tick = 1; tick <= 20; tick++) {
        const wins = await Promise.all([store.claimCronTick('job', tick * 1000), other.claimCronTick('job', tick * 1000), store.claimCronTick('job', tick * 1000), other.claimCronTick('job', tick * 1000)]);
        expect(wins.filter(Boolean)).toHaveLength(1);
      }
    });

    it('records the last run per app, for every node, and forgets it with the app', async () => {
      await store.deploy('job', bundle('j'), '', { crons: ['* * * * *'] });
      await store.deploy('quiet', bundle('q'), '', {});
      expect(await store.cronStates()).toEqual([]);
      await store.claimCronTick('job', 60_000);
      await store.recordCronRun('job', run());
      await store.recordCronRun('job', run({ ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom\n    at scheduled (app.ts:3:11)', scheduledTime: 120_000 }));
      const other = await h.another();
      expect(await other.cronStates()).toEqual([{ app: 'job', lastTick: 60_000, lastRun: run({ ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom\n    at scheduled (app.ts:3:11)', scheduledTime: 120_000 }) }]);
      // A manual run of an app never ticked yet records without claiming anything.
      await store.recordCronRun('quiet', run({ trigger: 'manual' }));
      expect((await store.cronStates()).find((s) => s.app === 'quiet')).toMatchObject({ lastTick: 0, lastRun: { trigger: 'manual' } });
      await store.recordCronRun('gone', run());
      await store.delete('job');
      expect((await store.cronStates()).map((s) => s.app)).toEqual(['quiet']);
      expect(await store.claimCronTick('job', 180_000)).toBe(false);
    });
  });
}
