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
});
