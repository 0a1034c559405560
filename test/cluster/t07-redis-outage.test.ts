/**
 * T7 (SCALE-OUT §4.3): Redis frozen for 20 s (SIGSTOP), then back; later killed and restarted
 * empty. Serving never depends on Redis: 0 failed `echo` requests throughout. KV depends on it and
 * fails fast with its code instead of hanging. Each node runs as an island meanwhile (a host that
 * joins s1 is served by i1), and on return the views converge and the presence data is rebuilt.
 */
import { expect, it } from 'vitest';
import { waitFor } from './cluster-api.ts';
import { httpCall } from './http-call.ts';
import { describeLoad, startLoad, type LoadRecord } from './load.ts';
import { clusterScenario, hold, redisKeys } from './scenario.ts';
import { CLUSTER_NAME, defaultSpec } from './topology.ts';

const PAUSE_AT_MS = 5000;
const PAUSE_MS = 20_000;
/** KV's bound while Redis is frozen (its command timeout) and when it is dead (refused at once). */
const KV_FAIL_FROZEN_MS = 5500;
const KV_FAIL_DEAD_MS = 1000;
const ISLAND_SERVE_MS = 5000;
const VIEWS_CONVERGE_MS = 7000;
const REATTACH_MS = 15_000;

const kvOk = (r: LoadRecord) => r.status === 200 || r.status === 404;

clusterScenario('T7: Redis frozen, then killed and restarted empty', () => defaultSpec(), (cluster) => {
  it('keeps serving, fails KV fast, runs islands, and converges after Redis returns', async () => {
    const c = cluster();
    await c.untilAttached(2);
    const echo = startLoad({ urls: c.ingresses.map((i) => `${i.url}/@echo/t7`), ratePerSecond: 50, durationMs: PAUSE_AT_MS + PAUSE_MS + 8000 });
    const kv = startLoad({ urls: c.ingresses.map((i) => `${i.url}/@echo/kv/CACHE/t7`), ratePerSecond: 5, durationMs: PAUSE_AT_MS + PAUSE_MS + 8000, ok: kvOk });
    await hold(PAUSE_AT_MS);
    c.redis.pause();
    const pausedAt = kv.elapsed();
    let resumedAt = Infinity;
    try {
      c.startHost({ name: 'h-island', home: 0 });
      await waitFor(
        async () => ((await c.ingressHealth('i1'))?.hosts.some((h) => (h.name ?? h.id) === 'h-island') ? true : null),
        ISLAND_SERVE_MS,
        () => 'a host that joined s1 while Redis was frozen is not served by i1 (island mode, deliverable 1)',
        100,
      );
      await hold(Math.max(0, PAUSE_MS - (kv.elapsed() - pausedAt)));
    } finally {
      c.redis.resume();
      resumedAt = kv.elapsed();
    }
    await Promise.all([c.untilNodeSeesHosts(0, VIEWS_CONVERGE_MS), c.untilNodeSeesHosts(1, VIEWS_CONVERGE_MS)]);
    await c.untilAttached(2, REATTACH_MS);
    const [e, k] = await Promise.all([echo.done, kv.done]);
    expect(e.failed, describeLoad(e)).toBe(0);
    // Every KV request during the freeze failed with its code within the bound; none hung.
    const during = kv.records.filter((r) => r.at >= pausedAt + 100 && r.at + r.ms <= resumedAt);
    expect(during.length).toBeGreaterThan(0);
    for (const r of during.filter((x) => !kvOk(x))) {
      expect({ status: r.status, error: r.error }).toEqual({ status: 503, error: 'KV_STORE_UNAVAILABLE' });
      expect(r.ms).toBeLessThanOrEqual(KV_FAIL_FROZEN_MS);
    }
    expect(k.total).toBeGreaterThan(0);

    // Killed: KV fails at once; restarted empty: every node re-registers exactly its live peers.
    await c.redis.kill();
    const dead = await httpCall(`${c.ingress('i1').url}/@echo/kv/CACHE/t7`);
    expect({ status: dead.status, error: dead.headers['x-kv-error'] }).toEqual({ status: 503, error: 'KV_STORE_UNAVAILABLE' });
    expect(dead.ms).toBeLessThanOrEqual(KV_FAIL_DEAD_MS);
    await c.redis.restart();
    const live = c.hosts.hosts.size;
    await waitFor(
      async () => (redisKeys(c.redis.host, c.redis.port, `dcdn:{${CLUSTER_NAME}}:p:h:*`).length === live ? true : null),
      VIEWS_CONVERGE_MS,
      () => `Redis does not hold exactly the ${live} live hosts after an empty restart (gen change → re-registration, SCALE-OUT §3.4.5); it holds ${redisKeys(c.redis.host, c.redis.port, `dcdn:{${CLUSTER_NAME}}:p:h:*`).length}`,
      250,
    );
  });
});
