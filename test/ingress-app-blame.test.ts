/**
 * Issue 15.4 and the scoring half of 15.5: who pays for a failed request.
 *
 * - An app that throws after its head fails on every host alike: the failures are counted
 *   against the app (`/_dcdn/health` → `appFailures`), and no host is taken out of rotation.
 *   Before, each such reset blamed the host: 20 requests put both hosts out for growing penalties.
 * - A host that forges the app's code (`HOST_HANDLER_ERROR` for every request) while its peers
 *   serve the same app well is an outlier and is taken out. Before, it was never penalised.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Stream } from '../protocol/index.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

let net: NodeNetwork;

beforeAll(async () => {
  net = await startNodeNetwork({
    proxy: { headTimeoutMs: 5000, retryIdempotent: false },
    pool: { penaltyBaseMs: 60_000, penaltyMaxMs: 60_000, outcomeMinSamples: 5, outcomeMaxExcess: 0.5 },
  });
});
afterEach(() => net.removeHosts());
afterAll(() => net.close());

/**
 * Sends the head and one chunk; once the client has them (`onFirstByte`), fails the stream as
 * the app's runner does when the handler throws mid-body.
 */
const midBody: Stream[] = [];
const throwsAfterHead = (s: Stream) => {
  s.onreset = () => {};
  s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
  void s.write(new TextEncoder().encode('partial')).then(() => midBody.push(s));
};
const onFirstByte = () => midBody.shift()?.reset('HOST_HANDLER_ERROR', 'TypeError: oops');
const forgesFailure = (s: Stream) => {
  s.onreset = () => {};
  s.reset('HOST_HANDLER_ERROR', 'forged');
};
const answers = (s: Stream) => {
  s.onreset = () => {};
  s.respond({ status: 200, headers: [['content-length', '2']] });
  void s.write(new TextEncoder().encode('ok')).then(() => s.end());
};

function get(path: string): Promise<{ status: number; host?: string; error?: string; complete: boolean }> {
  return new Promise((resolve) => {
    const req = httpRequest(`${net.ingress.url}${path}`, { agent: false }, (res) => {
      res.once('data', onFirstByte);
      res.resume();
      const done = (complete: boolean) => resolve({ status: res.statusCode!, host: res.headers['dcdn-host'] as string, error: res.headers['dcdn-error'] as string, complete });
      res.on('end', () => done(true));
      res.on('aborted', () => done(false));
      res.on('error', () => done(false));
    });
    req.on('error', () => resolve({ status: 0, complete: false }));
    req.end();
  });
}

async function health(): Promise<{ hosts: Array<{ name: string; penalised: boolean; penaltyLevel: number }>; appFailures: Record<string, { total: number; byCode: Record<string, number> }> }> {
  const res = await fetch(`${net.ingress.url}/_dcdn/health`);
  return (await res.json()) as never;
}

describe('an app that fails after its head', () => {
  it('is counted against the app; no host is taken out', async () => {
    await net.addHost('shared-a', throwsAfterHead);
    await net.addHost('shared-b', throwsAfterHead);
    const before = (await health()).appFailures?.['']?.total ?? 0;
    for (let i = 0; i < 20; i++) {
      const r = await get(`/boom-${i}`);
      expect(r.status).toBe(200);
      expect(r.complete).toBe(false); // cut: a broken response never looks complete
    }
    const h = await health();
    for (const host of h.hosts) expect(host).toMatchObject({ penalised: false, penaltyLevel: 0 });
    const counted = Object.values(h.appFailures).reduce((n, c) => n + (c.byCode['HOST_HANDLER_ERROR'] ?? 0), 0);
    expect(counted - before).toBeGreaterThanOrEqual(20);
    // Both hosts still take requests once the app is fixed.
    net.behave('shared-a', answers);
    net.behave('shared-b', answers);
    const served = new Set<string>();
    for (let i = 0; i < 6; i++) served.add((await get(`/ok-${i}`)).host!);
    expect(served).toEqual(new Set(['shared-a', 'shared-b']));
  });
});

describe('a host that forges the app\'s failures', () => {
  it('is taken out once its failure rate is far above its peers\' for the same app', async () => {
    await net.addHost('good-1', answers);
    await net.addHost('good-2', answers);
    await net.addHost('forger', forgesFailure);
    const forger = () => net.ingress.pool.list().find((h) => h.name === 'forger')!;
    let forged = 0;
    for (let i = 0; i < 60 && forger().penalisedUntil <= Date.now(); i++) {
      const r = await get(`/r${i}`);
      if (r.error === 'HOST_HANDLER_ERROR') forged++;
      else expect(r.status).toBe(200);
    }
    expect(forger().penalisedUntil).toBeGreaterThan(Date.now());
    expect(forged).toBeGreaterThanOrEqual(5);
    // Out of rotation: the next requests all succeed on the good hosts.
    for (let i = 0; i < 10; i++) {
      const r = await get(`/after-${i}`);
      expect(r.status).toBe(200);
      expect(r.host).not.toBe('forger');
    }
  });

  it('does not take out hosts when the app fails on every host alike', async () => {
    await net.addHost('even-1', forgesFailure);
    await net.addHost('even-2', forgesFailure);
    for (let i = 0; i < 20; i++) expect((await get(`/e${i}`)).error).toBe('HOST_HANDLER_ERROR');
    await until(() => net.ingress.pool.size === 2);
    for (const h of net.ingress.pool.list()) expect(h.penalisedUntil).toBe(0);
  });
});
