/**
 * Per-peer budgets of incoming frames, one token bucket per kind of frame, so that a peer that
 * floods one kind (PINGs while not reading its socket, RESETs, CREDITs, heads, tiny body
 * frames) is cut off with `PROTO_RATE_LIMITED` instead of making this side work, log and buffer
 * for it. Defaults are far above what a well-behaved peer sends (a PING a second; one head,
 * end and reset per request; a credit per half window) and are named options
 * (`SessionOptions.frameBudgets`). The buckets are budget-table.ts's; the clock is injectable for tests.
 */
import { BudgetTable, type Budget } from './budget-table.ts';
import { FrameType } from './frames.ts';

export type { Budget } from './budget-table.ts';

/** The kinds of frame budgeted separately. */
export type FrameKind = 'ping' | 'pong' | 'reset' | 'credit' | 'head' | 'end' | 'body' | 'log' | 'timing';

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
export class FrameBudgets extends BudgetTable<FrameKind> {
  constructor(overrides: Partial<Record<FrameKind, Budget>> = {}, now: () => number = Date.now) {
    super(FRAME_BUDGET_DEFAULTS, overrides, { what: 'frame budget', now });
  }
}
