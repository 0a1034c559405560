import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assign, cyrb53, type PlacementIngress } from './placement.ts';

const ingress = (name: string, region = 'default', weight = 1, draining = false): PlacementIngress => ({ name, region, weight, draining });
const ten = Array.from({ length: 10 }, (_, i) => ingress(`ingress-${i}`));
const hosts = Array.from({ length: 5000 }, (_, i) => `host-${i.toString(36)}-${(i * 7919) % 10007}`);

function counts(list: readonly PlacementIngress[], k: number, keys = hosts): Map<string, number> {
  const n = new Map<string, number>(list.map((i) => [i.name, 0]));
  for (const h of keys) for (const name of assign(h, 'default', list, k)) n.set(name, n.get(name)! + 1);
  return n;
}

describe('cyrb53', () => {
  it('gives the reference values, so every process and version hashes alike', () => {
    // Fixed here once; a change of the hash would move every host in a running cluster.
    expect(cyrb53('')).toBe(3338908027751811);
    expect(cyrb53('a')).toBe(7929297801672961);
    expect(cyrb53('host-1\0ingress-1')).toBe(cyrb53('host-1\0ingress-1'));
    expect(cyrb53('a')).not.toBe(cyrb53('b'));
  });
});

describe('assign', () => {
  it('gives each of 10 ingresses 1000 ± 10 % of 5000 hosts at K = 2', () => {
    for (const [name, n] of counts(ten, 2)) {
      expect(n, name).toBeGreaterThanOrEqual(900);
      expect(n, name).toBeLessThanOrEqual(1100);
    }
  });

  it('moves only the hosts of an ingress that leaves, at most 1.3 × its share', () => {
    const before = new Map(hosts.map((h) => [h, assign(h, 'default', ten, 2)]));
    const gone = 'ingress-3';
    const after = ten.filter((i) => i.name !== gone);
    let had = 0;
    let moved = 0;
    for (const h of hosts) {
      const was = before.get(h)!;
      const now = assign(h, 'default', after, 2);
      if (was.includes(gone)) {
        had++;
        // The host keeps its other ingress and gains exactly one.
        const kept = was.find((n) => n !== gone)!;
        expect(now).toContain(kept);
        moved++;
      } else {
        expect(now, h).toEqual(was);
      }
    }
    expect(moved).toBeLessThanOrEqual(1.3 * had);
    expect(had).toBeGreaterThan(800);
  });

  it('treats a draining ingress as gone', () => {
    const drained = ten.map((i) => (i.name === 'ingress-5' ? { ...i, draining: true } : i));
    for (const h of hosts.slice(0, 500)) {
      expect(assign(h, 'default', drained, 2)).toEqual(assign(h, 'default', ten.filter((i) => i.name !== 'ingress-5'), 2));
    }
  });

  it('fills from the host region first, then from others by score', () => {
    const mixed = [ingress('eu-1', 'eu'), ingress('eu-2', 'eu'), ingress('eu-3', 'eu'), ingress('us-1', 'us'), ingress('us-2', 'us')];
    for (const h of hosts.slice(0, 500)) {
      expect(assign(h, 'eu', mixed, 2).every((n) => n.startsWith('eu-'))).toBe(true);
      const us = assign(h, 'us', mixed, 3);
      expect(us.slice(0, 2).sort()).toEqual(['us-1', 'us-2']);
      expect(us[2]).toMatch(/^eu-/);
      // A region with no ingress at all takes the best by score anywhere.
      expect(assign(h, 'ap', mixed, 2)).toHaveLength(2);
    }
  });

  it('shares hosts in proportion to weight', () => {
    const weighted = [ingress('big', 'default', 3), ingress('small-1'), ingress('small-2'), ingress('small-3')];
    const n = counts(weighted, 1);
    // Expected 2500 of 5000 for weight 3 of 6, 833 for each weight 1.
    expect(n.get('big')!).toBeGreaterThan(2500 * 0.9);
    expect(n.get('big')!).toBeLessThan(2500 * 1.1);
    for (const s of ['small-1', 'small-2', 'small-3']) expect(Math.abs(n.get(s)! - 833)).toBeLessThan(100);
  });

  it('does not depend on the order ingresses are listed in', () => {
    const reversed = [...ten].reverse();
    for (const h of hosts.slice(0, 200)) expect(assign(h, 'default', reversed, 2)).toEqual(assign(h, 'default', ten, 2));
  });

  const arbIngress = fc.record({
    name: fc.string({ minLength: 1, maxLength: 12 }),
    region: fc.constantFrom('a', 'b', 'c'),
    weight: fc.double({ min: 0.1, max: 10, noNaN: true }),
    draining: fc.boolean(),
  });

  it('always gives min(k, eligible) distinct names of eligible ingresses', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom('a', 'b', 'c', 'd'), fc.array(arbIngress, { maxLength: 12 }), fc.integer({ min: 0, max: 8 }), (key, region, list, k) => {
        const eligible = new Set(list.filter((i) => !i.draining).map((i) => i.name));
        // Duplicated names: the first entry counts.
        const first = new Map<string, PlacementIngress>();
        for (const i of list) if (!first.has(i.name)) first.set(i.name, i);
        const usable = new Set([...first.values()].filter((i) => !i.draining).map((i) => i.name));
        const got = assign(key, region, list, k);
        expect(new Set(got).size).toBe(got.length);
        expect(got.length).toBe(Math.min(k, usable.size));
        for (const n of got) expect(eligible.has(n)).toBe(true);
      }),
    );
  });

  it('is stable under changes to ingresses the host is not assigned to', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.uniqueArray(arbIngress, { minLength: 2, maxLength: 10, selector: (i) => i.name }), fc.integer({ min: 1, max: 3 }), fc.nat(), (key, list, k, pick) => {
        const got = assign(key, 'a', list, k);
        const others = list.filter((i) => !got.includes(i.name));
        if (others.length === 0) return;
        const victim = others[pick % others.length]!;
        // Removing, draining or reweighting an ingress the host does not use never moves it…
        expect(assign(key, 'a', list.filter((i) => i !== victim), k)).toEqual(got);
        expect(assign(key, 'a', list.map((i) => (i === victim ? { ...i, draining: true } : i)), k)).toEqual(got);
        // …and neither does adding one that loses on score, in the same or another region.
        const extra = { name: `${victim.name}+`, region: 'z', weight: 1e-9, draining: false };
        if (got.length === k) expect(assign(key, 'a', [...list, extra], k)).toEqual(got);
      }),
    );
  });
});
