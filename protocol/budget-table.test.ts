import { describe, expect, it } from 'vitest';
import { BudgetTable } from './budget-table.ts';

const DEFAULTS = { ping: { perSecond: 10, burst: 2 }, other: { perSecond: 1, burst: 1 } } as const;

describe('BudgetTable', () => {
  it('keeps a bucket per kind: spending one kind leaves the others whole', () => {
    let now = 0;
    const t = new BudgetTable<'ping' | 'other'>(DEFAULTS, {}, { now: () => now });
    expect([t.take('ping'), t.take('ping'), t.take('ping')]).toEqual([true, true, false]);
    expect(t.take('other')).toBe(true);
    now += 100; // one ping refilled at 10/s
    expect([t.take('ping'), t.take('ping')]).toEqual([true, false]);
  });

  it('takes overrides over the defaults, and says which budget is invalid', () => {
    const t = new BudgetTable<'ping' | 'other'>(DEFAULTS, { other: { perSecond: 5, burst: 3 } });
    expect(t.budget('other')).toEqual({ perSecond: 5, burst: 3 });
    expect(t.budget('ping')).toEqual(DEFAULTS.ping);
    expect(() => new BudgetTable<'ping' | 'other'>(DEFAULTS, { ping: { perSecond: 0, burst: 1 } }, { what: 'signal budget' })).toThrow(new RangeError('signal budget ping needs perSecond > 0 and burst >= 1'));
  });
});
