/**
 * A token bucket: `burst` messages at once, refilled at `perSecond`: signaling's one per
 * connection, its shared rate limits' fallback, and each kind's in budget-table.ts.
 *
 * The clock is injectable so tests can drive it without timers.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket({ perSecond: 50, burst: 200 });
 * if (!bucket.take()) closeWith('SIG_RATE_LIMITED');
 * ```
 */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(options: { perSecond: number; burst: number }, now: () => number = Date.now) {
    if (!(options.perSecond > 0) || !(options.burst >= 1)) {
      throw new RangeError('rate limit needs perSecond > 0 and burst >= 1');
    }
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst;
    this.#now = now;
    this.#tokens = options.burst;
    this.#last = now();
  }

  /** Takes one token; false when the bucket is empty (the caller is over the limit). */
  take(): boolean {
    const now = this.#now();
    // max(0, ...) so a clock stepping backwards cannot drain or overfill the bucket.
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#last) * this.#perMs);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
