import { describe, expect, it } from 'vitest';
import type { Session } from '../protocol/index.ts';
import { HostPool } from './host-pool.ts';

const session = (closed = false) => ({ isClosed: closed }) as unknown as Session;
function pool(n: number, opts = {}) {
  const p = new HostPool(opts);
  for (let i = 0; i < n; i++) p.add({ id: `h${i}`, name: `h${i}`, session: session(), transport: 'webrtc', info: {} });
  return p;
}

describe('HostPool', () => {
  it('picks the host with the fewest requests in flight', () => {
    const p = pool(3);
    p.get('h0')!.inFlight = 2;
    p.get('h1')!.inFlight = 0;
    p.get('h2')!.inFlight = 1;
    expect(p.pick()).toMatchObject({ host: { id: 'h1' } });
  });

  it('spreads ties across hosts', () => {
    const p = pool(2);
    const picked = new Set(Array.from({ length: 4 }, () => (p.pick() as { host: { id: string } }).host.id));
    expect(picked).toEqual(new Set(['h0', 'h1']));
  });

  it('skips hosts already tried, at their limit, or closed', () => {
    const p = pool(3, { maxInFlightPerHost: 1 });
    p.get('h0')!.inFlight = 1;
    p.add({ id: 'h1', name: 'h1', session: session(true), transport: 'webrtc', info: {} });
    expect(p.pick(new Set(['h2']))).toEqual({ error: 'INGRESS_HOSTS_BUSY' });
    expect(p.pick()).toMatchObject({ host: { id: 'h2' } });
    expect(new HostPool().pick()).toEqual({ error: 'INGRESS_NO_HOST' });
  });

  it('takes a host out of rotation after repeated failures, for a doubling time', () => {
    const p = pool(2, { failureThreshold: 2, penaltyBaseMs: 100 });
    const h0 = p.get('h0')!;
    expect(p.reportFailure(h0, 0)).toBe(0);
    expect(p.reportFailure(h0, 0)).toBe(100);
    expect(p.reportFailure(h0, 0)).toBe(200);
    for (let i = 0; i < 4; i++) expect(p.pick(new Set(), 50)).toMatchObject({ host: { id: 'h1' } });
    p.reportSuccess(h0);
    expect(h0.penalisedUntil).toBe(0);
  });

  it('never takes every host out: penalised hosts serve when no other can', () => {
    const p = pool(1, { failureThreshold: 1 });
    p.reportFailure(p.get('h0')!, 0);
    expect(p.pick(new Set(), 10)).toMatchObject({ host: { id: 'h0' } });
  });

  it("keeps a host's record across sessions: a reconnect is not a clean slate", () => {
    const p = pool(2, { failureThreshold: 2, penaltyBaseMs: 100 });
    p.reportFailure(p.get('h0')!, 0);
    expect(p.reportFailure(p.get('h0')!, 0)).toBe(100);
    p.remove('h0');
    const again = p.add({ id: 'h0', name: 'h0', session: session(), transport: 'webrtc', info: {} });
    expect(again.penalisedUntil).toBe(100);
    expect(again.consecutiveFailures).toBe(2);
    expect(p.pick(new Set(), 50)).toMatchObject({ host: { id: 'h1' } });
    // The next penalty doubles, on the new session too.
    expect(p.reportFailure(again, 200)).toBe(200);
    expect(p.standing('h0', 200)).toEqual({ failures: 3, level: 2, penalisedUntil: 400 });
  });

  it('penalises a session fault at once and doubles it each time, up to the cap', () => {
    const p = pool(1, { failureThreshold: 3, penaltyBaseMs: 100, penaltyMaxMs: 350 });
    expect([0, 1, 2, 3].map((i) => p.reportSessionFault('h0', i * 1000))).toEqual([100, 200, 350, 350]);
    // A host id not connected right now has a record too (its session was just closed).
    expect(p.reportSessionFault('gone', 0)).toBe(100);
    expect(p.standing('gone', 0).level).toBe(1);
  });

  it('forgives one penalty level per penaltyDecayMs without a failure; a success lifts the penalty but not the level', () => {
    const p = pool(1, { failureThreshold: 1, penaltyBaseMs: 100, penaltyDecayMs: 1000 });
    const h0 = p.get('h0')!;
    p.reportFailure(h0, 0);
    p.reportFailure(h0, 0);
    p.reportFailure(h0, 0);
    expect(p.standing('h0', 0).level).toBe(3);
    p.reportSuccess(h0);
    expect(h0.penalisedUntil).toBe(0);
    expect(p.standing('h0', 500).level).toBe(3);
    expect(p.reportFailure(h0, 500)).toBe(800); // level 3: 100 * 2^3
    expect(p.standing('h0', 2500).level).toBe(2); // two decay steps since the last penalty at 500
    expect(p.standing('h0', 10_000).level).toBe(0);
    expect(p.reportFailure(h0, 10_000)).toBe(100);
  });

  it('when every host is penalised, uses the least penalised one with room', () => {
    const p = pool(3, { failureThreshold: 1, penaltyBaseMs: 100, maxInFlightPerHost: 1 });
    p.reportFailure(p.get('h0')!, 0); // until 100
    p.reportFailure(p.get('h1')!, 0);
    p.reportFailure(p.get('h1')!, 0); // until 200
    p.reportFailure(p.get('h2')!, 0);
    p.reportFailure(p.get('h2')!, 0);
    p.reportFailure(p.get('h2')!, 0); // until 400
    for (let i = 0; i < 3; i++) expect(p.pick(new Set(), 50)).toMatchObject({ host: { id: 'h0' } });
    p.get('h0')!.inFlight = 1;
    expect(p.pick(new Set(), 50)).toMatchObject({ host: { id: 'h1' } });
  });

  it('skips drained hosts and those the request may not go to, and holds volunteers to their own limit', () => {
    const p = new HostPool({ maxInFlightPerHost: 10, maxInFlightPerVolunteer: 2 });
    const volunteer = { volunteer: true, apps: null, capabilities: [], draining: false };
    p.add({ id: 'op', name: 'op', session: session(), transport: 'webrtc', info: {} });
    p.add({ id: 'vol', name: 'vol', session: session(), transport: 'webrtc', info: {}, traits: volunteer });
    p.get('op')!.traits = { ...p.get('op')!.traits, draining: true };
    expect(p.pick()).toMatchObject({ host: { id: 'vol' } });
    expect(p.pick(new Set(), Date.now(), (h) => !h.traits.volunteer)).toEqual({ error: 'INGRESS_NO_HOST' });
    p.get('vol')!.inFlight = 2;
    expect(p.pick()).toEqual({ error: 'INGRESS_HOSTS_BUSY' });
    p.get('op')!.traits = { ...p.get('op')!.traits, draining: false };
    p.get('op')!.inFlight = 9;
    expect(p.pick()).toMatchObject({ host: { id: 'op' } });
  });
  it("counts an app's failures against the app, and takes out only a host that fails far more than its peers", () => {
    const p = pool(3, { outcomeMinSamples: 4, outcomeMaxExcess: 0.5, penaltyBaseMs: 100 });
    const [h0, h1, h2] = ['h0', 'h1', 'h2'].map((id) => p.get(id)!);
    // The app fails everywhere alike: nobody is out.
    for (let i = 0; i < 6; i++) for (const h of [h0!, h1!]) expect(p.reportAppFailure(h, 'buggy', 'HOST_HANDLER_ERROR', 0).penaltyMs).toBe(0);
    expect(p.appFailures()['buggy']).toMatchObject({ total: 12, byCode: { HOST_HANDLER_ERROR: 12 } });
    // h2 fails an app its peers serve well: out once it has enough samples.
    for (let i = 0; i < 4; i++) {
      p.reportSuccess(h0!, 'fine');
      p.reportSuccess(h1!, 'fine');
    }
    const penalties = Array.from({ length: 4 }, () => p.reportAppFailure(h2!, 'fine', 'HOST_HANDLER_ERROR', 0).penaltyMs);
    expect(penalties).toEqual([0, 0, 0, 100]);
    expect(p.pick(new Set(), 50, (h) => h.id === 'h2' || h.id === 'h0')).toMatchObject({ host: { id: 'h0' } });
    expect(h0!.penalisedUntil).toBe(0);
  });
});
