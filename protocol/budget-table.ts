/**
 * Token buckets by kind: one budget (`burst` at once, refilled at `perSecond`) per kind of
 * message a peer sends, each bucket made on first use. Shared by the session's frame budgets
 * (frame-budget.ts: pings, resets, heads…) and signaling's per-kind signal budgets
 * (signaling/message-checks.ts: offers, candidates…), which differ only in their kinds and
 * defaults. Runtime-neutral; the clock is injectable for tests.
 *
 * @example
 * ```ts
 * const budgets = new BudgetTable({ ping: { perSecond: 10, burst: 50 }, other: { perSecond: 1, burst: 5 } }, { ping: { perSecond: 1, burst: 1 } });
 * if (!budgets.take('ping')) closeWith('PROTO_RATE_LIMITED');
 * ```
 */
import { TokenBucket } from './token-bucket.ts';

/** A budget: `burst` at once, refilled at `perSecond`. */
export interface Budget {
  perSecond: number;
  burst: number;
}

export class BudgetTable<K extends string> {
  readonly #budgets: Record<K, Budget>;
  readonly #buckets = new Map<K, TokenBucket>();
  readonly #now: () => number;

  /**
   * @param what names the budgets in the RangeError an invalid override throws (`frame budget`).
   * @throws {RangeError} when an override has no positive `perSecond` or a `burst` under 1.
   */
  constructor(defaults: Readonly<Record<K, Budget>>, overrides: Partial<Record<K, Budget>> = {}, options: { what?: string; now?: () => number } = {}) {
    this.#budgets = { ...defaults };
    for (const [k, v] of Object.entries(overrides) as Array<[K, Budget | undefined]>) {
      if (!v) continue;
      if (!(v.perSecond > 0) || !(v.burst >= 1)) throw new RangeError(`${options.what ?? 'budget'} ${k} needs perSecond > 0 and burst >= 1`);
      this.#budgets[k] = v;
    }
    this.#now = options.now ?? Date.now;
  }

  /** The budget of `kind`, for messages. */
  budget(kind: K): Budget {
    return this.#budgets[kind];
  }

  /** Spends one of `kind`; false when its budget is exhausted. */
  take(kind: K): boolean {
    let bucket = this.#buckets.get(kind);
    if (!bucket) {
      bucket = new TokenBucket(this.#budgets[kind], this.#now);
      this.#buckets.set(kind, bucket);
    }
    return bucket.take();
  }
}
