/**
 * T5 (SCALE-OUT §4.3): kill -9 of an ingress under load at the others. They lose nothing; its
 * entry leaves at once (its signaling socket resets); placement moves only its share of hosts
 * (at most 1.3 × what it had) and every host is back at 2 live attachments within 20 s.
 */
import { expect, it } from 'vitest';
import { waitFor } from './cluster-api.ts';
import { describeLoad, startLoad } from './load.ts';
import { clusterScenario, hold } from './scenario.ts';
import { defaultSpec } from './topology.ts';

const LOAD_MS = 20_000;
const KILL_AT_MS = 5000;
const REATTACHED_MS = 20_000;
/** "At once": the RST reaches signaling immediately; this is the slack for a busy machine. */
const ENTRY_GONE_MS = 2000;
const MAX_MOVED_FACTOR = 1.3;

clusterScenario('T5: kill -9 of an ingress under load', () => defaultSpec(), (cluster) => {
  it('i2 and i3 lose nothing, and every host is back at 2 attachments within 20 s', async () => {
    const c = cluster();
    const before = await c.untilAttached(2);
    const load = startLoad({ urls: ['i2', 'i3'].map((n) => `${c.ingress(n).url}/@echo/t5`), ratePerSecond: 100, durationMs: LOAD_MS });
    await hold(KILL_AT_MS);
    await c.ingress('i1').proc.kill9();
    await waitFor(
      async () => {
        const views = await Promise.all([c.health(0), c.health(1)]);
        return views.every((h) => h && !h.peers.some((p) => p.role === 'ingress' && p.info?.name === 'i1')) ? true : null;
      },
      ENTRY_GONE_MS,
      () => 'i1 is still listed after its kill',
      50,
    );
    const after = await c.untilAttached(2, REATTACHED_MS);
    const moved = ['i2', 'i3'].reduce((n, name) => n + after.get(name)!.filter((h) => !before.get(name)!.includes(h)).length, 0);
    expect(moved, 'hosts that moved (rendezvous hashing moves only the dead ingress\'s share)').toBeLessThanOrEqual(Math.ceil(MAX_MOVED_FACTOR * before.get('i1')!.length));
    const s = await load.done;
    expect(s.failed, describeLoad(s)).toBe(0);
  });
});
