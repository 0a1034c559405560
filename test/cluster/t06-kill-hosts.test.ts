/**
 * T6 (SCALE-OUT §4.3): 5 of 20 hosts die like crashed tabs during load. No idempotent request
 * whose head had not arrived fails (the ingress retries it on another host); responses cut after
 * their head are at most the requests in flight at those hosts when they died.
 */
import { expect, it } from 'vitest';
import { describeLoad, inFlightAt, startLoad } from './load.ts';
import { clusterScenario, hold } from './scenario.ts';
import { defaultSpec } from './topology.ts';

const LOAD_MS = 15_000;
const KILL_AT_MS = 5000;
const VICTIMS = ['h1-1', 'h1-2', 'h1-3', 'h2-1', 'h2-2'];

clusterScenario('T6: hosts die during load', () => defaultSpec(), (cluster) => {
  it('fails no request whose head had not arrived', async () => {
    const c = cluster();
    await c.untilAttached(2);
    const urls = c.ingresses.flatMap((i) => [`${i.url}/@echo/t6`, `${i.url}/@echo/slow?ms=300`]);
    const load = startLoad({ urls, ratePerSecond: 100, durationMs: LOAD_MS });
    await hold(KILL_AT_MS);
    const killedAt = load.elapsed();
    for (const name of VICTIMS) c.hosts.destroy(name);
    const s = await load.done;
    const inFlight = inFlightAt(load.records, killedAt);
    console.info(`[T6] requests in flight at the kill: ${inFlight}; cut after head: ${s.cutAfterHead}`);
    expect(s.failedBeforeHead, describeLoad(s)).toBe(0);
    expect(s.cutAfterHead).toBeLessThanOrEqual(inFlight);
  });
});
