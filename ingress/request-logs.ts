/**
 * The handlers' console output on its way to `dcdn tail`: LOG frames from host sessions
 * (protocol/frames.ts), held per request until the request ends and then published with it,
 * or published on their own when they come later (a handler's `ctx.waitUntil()` work).
 *
 * Only requests that started while somebody tailed are tracked, so an ingress nobody tails
 * keeps no state here; their lines are dropped on arrival. A line is taken only from the
 * session its request was sent to (a host cannot write into another host's requests), within
 * the request's LOG_LIMITS (the host cut first; a volunteer's page may be modified, so this
 * side counts again), and within `maxBufferedBytes` over all requests in flight.
 */
import { LogBudget, utf8Length, type LogFrame, type LogLevel, type LogLimits, type Session } from '../protocol/index.ts';

/** One line of a handler's output, as tail events carry it. */
export interface ConsoleLine {
  /** ISO time the line reached the ingress. */
  time: string;
  level: Exclude<LogLevel, 'cut'>;
  text: string;
}

/** What was cut of a request's output: by the host and here, over the per-request limits. */
export interface LogsCut {
  lines: number;
  bytes: number;
}

export interface RequestLogOptions {
  /** How long after a request ended its late lines (`waitUntil` work) are still taken. Default 30 000 ms. */
  lateWindowMs?: number;
  /** Requests tracked at once, in flight and ended; the oldest are forgotten first. Default 4096. */
  maxTracked?: number;
  /** Bytes of lines held for requests in flight, all together; past it lines are cut. Default 8 MiB. */
  maxBufferedBytes?: number;
  /** Per-request limits (protocol/console-log.ts LOG_LIMITS). */
  limits?: Partial<LogLimits>;
}

export const REQUEST_LOG_DEFAULTS = {
  lateWindowMs: 30_000,
  maxTracked: 4096,
  maxBufferedBytes: 8 * 1024 * 1024,
} as const;

interface Tracked<E> {
  session: Session;
  budget: LogBudget;
  lines: ConsoleLine[];
  bytes: number;
  /** Set when the request ended: what late lines are published with. */
  ended: { event: E; at: number } | null;
}

/** Per-request console lines of one ingress; `E` is the request's tail event. */
export class RequestLogBook<E> {
  /** Lines dropped because their request was not tracked, came from another session, or ended too long ago. */
  dropped = 0;
  readonly #tracked = new Map<string, Tracked<E>>();
  readonly #opts: Required<Omit<RequestLogOptions, 'limits'>> & { limits: Partial<LogLimits> };
  readonly #onLate: (event: E, line: ConsoleLine | null, cut: LogsCut | null) => void;
  readonly #now: () => number;
  #buffered = 0;

  /**
   * @param onLate called for a line (or a `cut` report) of a request that already ended, with
   *   that request's event
   */
  constructor(options: RequestLogOptions, onLate: (event: E, line: ConsoleLine | null, cut: LogsCut | null) => void, now: () => number = Date.now) {
    this.#opts = { ...REQUEST_LOG_DEFAULTS, limits: {}, ...stripUndefined(options) };
    this.#onLate = onLate;
    this.#now = now;
  }

  get size(): number {
    return this.#tracked.size;
  }

  /** The request was sent to the host on `session` (again, on a retry: the last host counts). */
  track(requestId: string, session: Session): void {
    const t = this.#tracked.get(requestId);
    if (t) {
      t.session = session;
      return;
    }
    this.#evict();
    this.#tracked.set(requestId, { session, budget: new LogBudget(this.#opts.limits), lines: [], bytes: 0, ended: null });
  }

  /** A LOG frame from `session`. */
  receive(session: Session, frame: LogFrame): void {
    const t = this.#tracked.get(frame.requestId);
    if (!t || t.session !== session || (t.ended && this.#now() - t.ended.at > this.#opts.lateWindowMs)) {
      this.dropped++;
      return;
    }
    if (frame.level === 'cut') {
      t.budget.addCut(frame.cutLines, frame.cutBytes);
      if (t.ended) this.#onLate(t.ended.event, null, { lines: frame.cutLines, bytes: frame.cutBytes });
      return;
    }
    let text = t.budget.take(frame.text);
    if (text !== null && !t.ended && this.#buffered + utf8Length(text) > this.#opts.maxBufferedBytes) {
      t.budget.addCut(1, utf8Length(text));
      text = null;
    }
    if (text === null) {
      if (t.ended) this.#onLate(t.ended.event, null, { lines: 1, bytes: utf8Length(frame.text) });
      return;
    }
    const line: ConsoleLine = { time: new Date(this.#now()).toISOString(), level: frame.level, text };
    if (t.ended) return this.#onLate(t.ended.event, line, null);
    const size = utf8Length(text);
    t.lines.push(line);
    t.bytes += size;
    this.#buffered += size;
  }

  /**
   * The request ended: returns the lines held for it and what was cut, and keeps it for
   * `lateWindowMs` so that later lines are published with `event`. Null when it was not tracked.
   */
  finish(requestId: string, event: E): { lines: ConsoleLine[]; cut: LogsCut | null } | null {
    const t = this.#tracked.get(requestId);
    if (!t || t.ended) return null;
    const lines = t.lines;
    this.#buffered -= t.bytes;
    t.lines = [];
    t.bytes = 0;
    t.ended = { event, at: this.#now() };
    // Moved to the back: eviction goes oldest-ended first.
    this.#tracked.delete(requestId);
    this.#tracked.set(requestId, t);
    const { cutLines, cutBytes } = t.budget;
    return { lines, cut: cutLines > 0 ? { lines: cutLines, bytes: cutBytes } : null };
  }

  /** Forgets ended requests past the late window, and the oldest ones over `maxTracked`. */
  #evict(): void {
    const now = this.#now();
    for (const [id, t] of this.#tracked) {
      const expired = t.ended !== null && now - t.ended.at > this.#opts.lateWindowMs;
      if (!expired && this.#tracked.size < this.#opts.maxTracked) break;
      this.#buffered -= t.bytes;
      this.#tracked.delete(id);
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
