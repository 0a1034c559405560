/**
 * Runs in the sandbox worker: turns the app's `console.*` calls into lines for `dcdn tail`.
 *
 * Which request a line belongs to: a worker serves many requests at once and browsers have no
 * async context yet (TC39 AsyncContext would give one), so the runtime attributes a line to
 * the request whose handler is running synchronously right now (the part of `fetch()` before
 * its first `await`), else to the only request in flight in this worker. A line written after
 * an `await` while several requests are in flight cannot be told apart and is dropped (counted
 * in the worker's `unattributed`); docs/observability.md says so.
 */
// A leaf import, not protocol/index.ts: this file is bundled into every sandbox worker.
import { LogBudget } from '../../protocol/console-log.ts';

/** The console methods captured; each is a LOG level of its own (protocol/frames.ts). */
export const CONSOLE_LEVELS = ['log', 'info', 'warn', 'error', 'debug'] as const;
export type ConsoleLevel = (typeof CONSOLE_LEVELS)[number];
/** What a sandbox line may be: a console level, an uncaught exception, or a count of lines cut. */
export type SandboxLogLevel = ConsoleLevel | 'exception' | 'cut';

/** A line for one request, ready to post. */
export interface LogLine {
  id: number;
  level: SandboxLogLevel;
  text: string;
  cutLines: number;
  cutBytes: number;
}

/**
 * The per-request log state of one worker: budgets (LOG_LIMITS, so a handler that logs in a loop
 * posts at most the cap and a count), and the attribution rule above.
 */
export class RequestLogs {
  /** The request whose handler code runs synchronously now; 0 when none. */
  current = 0;
  /** Lines no request could be found for. */
  unattributed = 0;
  readonly #budgets = new Map<number, LogBudget>();
  readonly #active: ReadonlyMap<number, unknown>;
  readonly #post: (line: LogLine) => void;

  /** @param active the requests in flight in this worker (waitUntil work included), by id */
  constructor(active: ReadonlyMap<number, unknown>, post: (line: LogLine) => void) {
    this.#active = active;
    this.#post = post;
  }

  /** The request a line written now belongs to, or 0. */
  attribute(): number {
    if (this.current !== 0) return this.current;
    if (this.#active.size === 1) return this.#active.keys().next().value!;
    return 0;
  }

  /** Posts `text` for request `id` (default: {@link attribute}) within its budget. */
  write(level: Exclude<SandboxLogLevel, 'cut'>, text: string, id = this.attribute()): void {
    if (id === 0) {
      this.unattributed++;
      return;
    }
    let budget = this.#budgets.get(id);
    if (!budget) this.#budgets.set(id, (budget = new LogBudget()));
    const kept = budget.take(text);
    if (kept !== null) this.#post({ id, level, text: kept, cutLines: 0, cutBytes: 0 });
  }

  /** The request is over for this worker: posts what was cut, if anything, and forgets it. */
  end(id: number): void {
    const budget = this.#budgets.get(id);
    if (!budget) return;
    this.#budgets.delete(id);
    if (budget.cutLines > 0) this.#post({ id, level: 'cut', text: '', cutLines: budget.cutLines, cutBytes: budget.cutBytes });
  }
}

/**
 * Replaces the console methods of `target` (the worker's global console) with ones that write
 * to `logs`. `describe` renders an Error (its stack, mapped to the user's source).
 */
export function captureConsole(target: Console, logs: RequestLogs, describe: (err: Error) => string): void {
  for (const level of CONSOLE_LEVELS) {
    const method = (...args: unknown[]) => logs.write(level, formatArgs(args, describe));
    Object.defineProperty(target, level, { value: method, writable: true, configurable: true });
  }
}

/** Console arguments as one line, roughly as a browser's console prints them (`%s %d %o` included). */
export function formatArgs(args: unknown[], describe: (err: Error) => string): string {
  const parts: string[] = [];
  let rest = args;
  const first = args[0];
  if (typeof first === 'string' && first.includes('%') && args.length > 1) {
    let i = 1;
    const head = first.replace(/%([sdifoOjc%])/g, (whole, spec: string) => {
      if (spec === '%') return '%';
      if (i >= args.length) return whole;
      const arg = args[i++];
      switch (spec) {
        case 's':
          return typeof arg === 'string' ? arg : render(arg, describe);
        case 'd':
        case 'i':
          return typeof arg === 'bigint' ? `${arg}` : String(spec === 'i' ? Math.trunc(Number(arg)) : Number(arg));
        case 'f':
          return String(Number(arg));
        case 'c':
          return ''; // CSS: nothing to show in a terminal
        default:
          return render(arg, describe);
      }
    });
    parts.push(head);
    rest = args.slice(i);
  } else if (args.length > 0) {
    parts.push(typeof first === 'string' ? first : render(first, describe));
    rest = args.slice(1);
  }
  for (const arg of rest) parts.push(typeof arg === 'string' ? arg : render(arg, describe));
  return parts.join(' ');
}

/** One value as text: Errors by their stack, objects as JSON (cycles and functions named, not followed). */
function render(value: unknown, describe: (err: Error) => string): string {
  if (value instanceof Error) return describe(value);
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'undefined':
      return 'undefined';
    case 'function':
      return `[Function ${value.name || '(anonymous)'}]`;
    case 'symbol':
    case 'bigint':
    case 'number':
    case 'boolean':
      return typeof value === 'bigint' ? `${value}n` : String(value);
  }
  if (value === null) return 'null';
  const seen = new WeakSet<object>();
  try {
    const json = JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'bigint') return `${v}n`;
      if (typeof v === 'function') return `[Function ${(v as { name?: string }).name || '(anonymous)'}]`;
      if (v instanceof Error) return describe(v);
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[Circular]';
        seen.add(v);
        if (v instanceof Map) return { [`Map(${v.size})`]: Object.fromEntries(v) };
        if (v instanceof Set) return { [`Set(${v.size})`]: [...v] };
      }
      return v;
    });
    const name = (value as object).constructor?.name;
    return json === undefined ? String(value) : name && name !== 'Object' && name !== 'Array' ? `${name} ${json}` : json;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
