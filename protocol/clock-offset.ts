/**
 * The offset between the ingress's clock and a host's, estimated the way NTP does (RFC 5905
 * §8) from exchanges the session makes anyway: a timed request is one. The ingress sent it at
 * `t0` (its clock), the host received it at `t1` and answered at `t2` (the host's clock), and
 * the answer came back at `t3` (the ingress's clock). Then
 *
 *   offset = ((t1 - t0) + (t2 - t3)) / 2   (host clock minus ingress clock)
 *   delay  = (t3 - t0) - (t2 - t1)         (time on the wire, both ways)
 *
 * The offset is exact when both directions take as long; its error is at most half the delay.
 * So, as NTP's clock filter does, the estimate is the offset of the sample with the least delay
 * among the last few, which is the one queueing disturbed least. Runtime-neutral and pure.
 */

/** One exchange: `t0` and `t3` on this side's clock, `t1` and `t2` on the peer's, all in ms. */
export interface ClockSample {
  t0: number;
  t1: number;
  t2: number;
  t3: number;
}

/** Offset (peer minus local) and round-trip delay of one exchange, in ms. */
export function sampleOffset(s: ClockSample): { offsetMs: number; delayMs: number } {
  return { offsetMs: (s.t1 - s.t0 + (s.t2 - s.t3)) / 2, delayMs: s.t3 - s.t0 - (s.t2 - s.t1) };
}

/** Samples an estimate keeps by default (NTP's clock filter keeps 8; requests come faster). */
export const CLOCK_OFFSET_WINDOW = 32;

/**
 * The offset estimate for one peer: the least-delay sample of the last `window`.
 *
 * @example
 * ```ts
 * const clock = new ClockOffset();
 * clock.add({ t0: 100, t1: 1_000_050.2, t2: 1_000_050.9, t3: 100.9 });
 * clock.offsetMs; // ≈ 999_950: subtract it from a host time to read it on the ingress's clock
 * ```
 */
export class ClockOffset {
  readonly #window: number;
  readonly #samples: Array<{ offsetMs: number; delayMs: number }> = [];
  #best: { offsetMs: number; delayMs: number } | undefined;

  constructor(window = CLOCK_OFFSET_WINDOW) {
    this.#window = Math.max(1, window);
  }

  /** Adds an exchange; one whose delay is negative (a clock stepped meanwhile) is ignored. */
  add(sample: ClockSample): void {
    const s = sampleOffset(sample);
    if (!(s.delayMs >= 0) || !Number.isFinite(s.offsetMs)) return;
    this.#samples.push(s);
    if (this.#samples.length > this.#window) this.#samples.shift();
    let best = this.#samples[0]!;
    for (const x of this.#samples) if (x.delayMs < best.delayMs) best = x;
    this.#best = best;
  }

  /** Peer clock minus local clock, in ms; undefined before the first sample. */
  get offsetMs(): number | undefined {
    return this.#best?.offsetMs;
  }

  /** The delay of the sample the estimate comes from: twice the estimate's worst error. */
  get delayMs(): number | undefined {
    return this.#best?.delayMs;
  }

  get samples(): number {
    return this.#samples.length;
  }
}
