/**
 * Per-peer budgets of incoming frames, one token bucket per kind of frame, so that a peer that
 * floods one kind (PINGs while not reading its socket, RESETs, CREDITs, heads, tiny body
 * frames) is cut off with `PROTO_RATE_LIMITED` instead of making this side work, log and buffer
 * for it. Defaults are far above what a well-behaved peer sends (a PING a second; one head,
 * end and reset per request; a credit per half window) and are named options
 * (`SessionOptions.frameBudgets`). Runtime-neutral; the clock is injectable for tests.
 */
import { FrameType } from './frames.ts';

/** The kinds of frame budgeted separately. */
export type FrameKind = 'ping' | 'pong' | 'reset' | 'credit' | 'head' | 'end' | 'body' | 'log' | 'timing';

/** A budget: `burst` frames at once, refilled at `perSecond`. */
export interface Budget {
  perSecond: number;
  burst: number;
}

export const FRAME_BUDGET_DEFAULTS: Readonly<Record<FrameKind, Budget>> = {
  ping: { perSecond: 10, burst: 50 },
  pong: { perSecond: 10, burst: 50 },
  reset: { perSecond: 5_000, burst: 20_000 },
  credit: { perSecond: 50_000, burst: 100_000 },
  head: { perSecond: 10_000, burst: 20_000 },
  end: { perSecond: 10_000, burst: 20_000 },
  body: { perSecond: 1_000_000, burst: 1_000_000 },
  // A host caps each request's lines (console-log.ts LOG_LIMITS); this bounds all of them.
  log: { perSecond: 20_000, burst: 50_000 },
  // At most one TIMING or TIMING_ASK per request, and only for requests the ingress times.
  timing: { perSecond: 10_000, burst: 20_000 },
};

/** The kind of a frame, or null for frames that are not budgeted (HELLO and ERROR end or start a session). */
export function frameKind(type: number): FrameKind | null {
  switch (type) {
    case FrameType.PING:
      return 'ping';
    case FrameType.PONG:
      return 'pong';
    case FrameType.RESET:
      return 'reset';
    case FrameType.CREDIT:
      return 'credit';
    case FrameType.REQ_HEAD:
    case FrameType.RES_HEAD:
      return 'head';
    case FrameType.REQ_END:
    case FrameType.RES_END:
    case FrameType.WS_CLOSE:
      return 'end';
    case FrameType.REQ_BODY:
    case FrameType.RES_BODY:
    case FrameType.WS_DATA:
      return 'body';
    case FrameType.LOG:
      return 'log';
    case FrameType.TIMING:
    case FrameType.TIMING_ASK:
      return 'timing';
    default:
      return null;
  }
}

/** The buckets of one session. */
export class FrameBudgets {
  readonly #budgets: Record<FrameKind, Budget>;
  readonly #tokens = new Map<FrameKind, { tokens: number; last: number }>();
  readonly #now: () => number;

  constructor(overrides: Partial<Record<FrameKind, Budget>> = {}, now: () => number = Date.now) {
    this.#budgets = { ...FRAME_BUDGET_DEFAULTS };
    for (const [k, v] of Object.entries(overrides)) {
      if (!v) continue;
      if (!(v.perSecond > 0) || !(v.burst >= 1)) throw new RangeError(`frame budget ${k} needs perSecond > 0 and burst >= 1`);
      this.#budgets[k as FrameKind] = v;
    }
    this.#now = now;
  }

  /** The budget of `kind`, for messages. */
  budget(kind: FrameKind): Budget {
    return this.#budgets[kind];
  }

  /** Spends one frame of `kind`; false when its budget is exhausted. */
  take(kind: FrameKind): boolean {
    const b = this.#budgets[kind];
    const now = this.#now();
    let state = this.#tokens.get(kind);
    if (!state) {
      state = { tokens: b.burst, last: now };
      this.#tokens.set(kind, state);
    }
    state.tokens = Math.min(b.burst, state.tokens + (Math.max(0, now - state.last) * b.perSecond) / 1000);
    state.last = now;
    if (state.tokens < 1) return false;
    state.tokens -= 1;
    return true;
  }
}
