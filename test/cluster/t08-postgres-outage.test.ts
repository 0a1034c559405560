/**
 * T8 (SCALE-OUT §4.3): Postgres killed for 20 s. Deploys answer 503 APP_STORE_UNAVAILABLE within
 * 5 s instead of hanging; serving goes on from the cached state with no failure; once Postgres is
 * back a deploy reaches every host within 3 s of its answer.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { waitFor } from './cluster-api.ts';
import { describeLoad, startLoad } from './load.ts';
import { clusterScenario, hold } from './scenario.ts';
import { defaultSpec } from './topology.ts';

const DOWN_MS = 20_000;
const UNAVAILABLE_MS = 5000;
const DEPLOY_REACH_MS = 3000;
/** How long the control store may take to reconnect after Postgres is back. */
const RECONNECT_MS = 15_000;

clusterScenario('T8: Postgres killed, then back', () => defaultSpec(), (cluster) => {
  it('refuses deploys fast while it is down, keeps serving, and deploys again after', async () => {
    const c = cluster();
    await c.untilAttached(2);
    const file = join(c.dir, 't8.ts');
    writeFileSync(file, `export default { fetch() { return new Response('t8'); } };\n`);
    const load = startLoad({ urls: c.ingresses.map((i) => `${i.url}/@echo/t8`), ratePerSecond: 50, durationMs: DOWN_MS + 10_000 });
    await hold(2000);
    await c.pg.kill();
    const downAt = Date.now();
    const started = Date.now();
    const refused = await c.dcdnVia(0, 'deploy', file, '--name', 'echo', '--kv', 'CACHE', '--skip-check');
    const took = Date.now() - started;
    expect(refused.code).not.toBe(0);
    expect(refused.stderr + refused.stdout, 'deploys answer 503 APP_STORE_UNAVAILABLE while Postgres is down (deliverable 2)').toMatch(/APP_STORE_UNAVAILABLE/);
    expect(took).toBeLessThanOrEqual(UNAVAILABLE_MS);
    await hold(Math.max(0, DOWN_MS - (Date.now() - downAt)));
    await c.pg.restart();
    const before = Math.max(...[...c.hosts.hosts.values()].map((h) => h.versions.get('echo') ?? 0));
    const ok = await waitFor(
      async () => {
        const r = await c.dcdnVia(0, 'deploy', file, '--name', 'echo', '--kv', 'CACHE', '--skip-check', '--rollout-timeout', '0');
        return r.code === 0 ? { at: Date.now() } : null;
      },
      RECONNECT_MS,
      () => 'no deploy succeeded after Postgres came back (the control store must reconnect)',
      1000,
    );
    await waitFor(
      async () => [...c.hosts.hosts.values()].every((h) => (h.versions.get('echo') ?? 0) > before),
      DEPLOY_REACH_MS,
      () => 'the deploy after the outage did not reach every host within 3 s (NOTIFY + poll, deliverable 2)',
      50,
    );
    expect(Date.now() - ok.at).toBeLessThanOrEqual(DEPLOY_REACH_MS + 100);
    const s = await load.done;
    expect(s.failed, describeLoad(s)).toBe(0);
  });
});
