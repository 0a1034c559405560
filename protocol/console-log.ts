/**
 * The bounds of a handler's console output per request, and the accounting both ends run: the
 * host page cuts before it sends (so a handler that logs in a loop does not fill the channel),
 * and the ingress cuts again on what it receives (a volunteer's page may be modified). Whatever
 * is cut is counted and reported, never silently lost: `dcdn tail` prints "N lines (M bytes) cut".
 */
import { LIMITS } from './frames.ts';

export interface LogLimits {
  /** Lines (console calls and exceptions) kept per request; later ones are counted as cut. */
  linesPerRequest: number;
  /** UTF-8 bytes of text kept per request; a line that would pass it is cut whole. */
  bytesPerRequest: number;
  /** Longest single line in characters; longer ones are shortened (ending in `…`). */
  lineLength: number;
}

/** Defaults of {@link LogLimits}, documented in docs/observability.md. */
export const LOG_LIMITS: Readonly<LogLimits> = {
  linesPerRequest: 100,
  bytesPerRequest: 64 * 1024,
  lineLength: LIMITS.logTextLength,
};

/**
 * What one request may still log. `take` returns the text to send (shortened when too long), or
 * null when the request is over a limit, and then counts the line in `cutLines`/`cutBytes`.
 *
 * @example
 * ```ts
 * const budget = new LogBudget();
 * const text = budget.take(line);
 * if (text !== null) session.sendLog(id, 'log', text);
 * // when the request is over: if (budget.cutLines) session.sendLog(id, 'cut', '', budget.cutLines, budget.cutBytes);
 * ```
 */
export class LogBudget {
  lines = 0;
  bytes = 0;
  cutLines = 0;
  cutBytes = 0;
  readonly #limits: LogLimits;

  constructor(limits: Partial<LogLimits> = {}) {
    this.#limits = { ...LOG_LIMITS, ...limits };
  }

  take(text: string): string | null {
    const line = text.length > this.#limits.lineLength ? `${text.slice(0, this.#limits.lineLength - 1)}…` : text;
    const size = utf8Length(line);
    if (this.lines >= this.#limits.linesPerRequest || this.bytes + size > this.#limits.bytesPerRequest) {
      this.cutLines++;
      this.cutBytes += size;
      return null;
    }
    this.lines++;
    this.bytes += size;
    return line;
  }

  /** Adds cut counts reported by the other end (a LOG frame of level `cut`). */
  addCut(lines: number, bytes: number): void {
    this.cutLines += lines;
    this.cutBytes += bytes;
  }
}

/** Bytes of `s` in UTF-8, without encoding it. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      // A surrogate pair: 2 code units, 4 bytes.
      n += 2;
      i++;
    } else n += 2;
  }
  return n;
}
