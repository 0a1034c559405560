/**
 * Cron expressions as dcdn reads them (docs/apps.md, "Cron triggers"): parsed by croner, always
 * in UTC, five fields (minute hour day-of-month month day-of-week, as Workers and Vixie cron)
 * or six with seconds first; day-of-month and day-of-week match when either does (Vixie cron's
 * OR). Nicknames such as `@hourly` are accepted too; a seventh (year) field is not.
 */
import { Cron } from 'croner';
import { DcdnError, parseAppConfig } from '../protocol/index.ts';

function parse(expression: string): Cron {
  const fields = expression.trim().split(/\s+/);
  if (!expression.trim().startsWith('@') && fields.length !== 5 && fields.length !== 6) {
    throw new DcdnError('APP_BAD_CRON', `cron expression ${JSON.stringify(expression.slice(0, 100))} has ${fields.length} fields: use five (minute hour day month weekday) or six (seconds first)`);
  }
  try {
    return new Cron(expression, { paused: true, timezone: 'UTC' });
  } catch (err) {
    throw new DcdnError('APP_BAD_CRON', `cron expression ${JSON.stringify(expression.slice(0, 100))} is not valid: ${(err as Error).message}`);
  }
}

/**
 * Checks every expression of a deploy's `crons` (shape by parseAppConfig, syntax by croner).
 *
 * @throws {DcdnError} APP_BAD_CRON naming the expression, APP_BAD_CONFIG for a bad shape.
 * @example
 * ```ts
 * checkCrons(['*\/5 * * * *']); // fine
 * checkCrons(['61 * * * *']);  // throws APP_BAD_CRON: ... Invalid value for minute: 61
 * ```
 */
export function checkCrons(crons: unknown): void {
  const list = parseAppConfig({ crons }).crons ?? [];
  for (const c of list) parse(c);
}

/** A tick: when, and which expression it belongs to. */
export interface CronTick {
  cron: string;
  /** ms since the epoch (UTC). */
  time: number;
}

/**
 * The expressions of `crons` that parse, with their croner job. Those that do not are skipped (a
 * deploy checked them; a store written by a newer build may know more).
 */
function* readable(crons: readonly string[]): Generator<{ cron: string; job: Cron }> {
  for (const cron of crons) {
    let job: Cron;
    try {
      job = parse(cron);
    } catch {
      continue;
    }
    yield { cron, job };
  }
}

/**
 * The latest tick at or before `now` among `crons` (the one to run when several fell due since
 * the last look: missed ticks are not replayed), or null when none ever fell due. Expressions
 * that do not parse are skipped (a deploy checked them; a store written by a newer build may
 * know more).
 */
export function latestTick(crons: readonly string[], now: number): CronTick | null {
  let best: CronTick | null = null;
  for (const { cron, job } of readable(crons)) {
    // previousRuns excludes its reference instant; one ms later includes a tick at `now` itself.
    const t = job.previousRuns(1, new Date(now + 1))[0]?.getTime();
    if (t !== undefined && t <= now && (best === null || t > best.time)) best = { cron, time: t };
  }
  return best;
}

/** The first tick after `now` among `crons`, or null when none will come. */
export function nextTick(crons: readonly string[], now: number): CronTick | null {
  let best: CronTick | null = null;
  for (const { cron, job } of readable(crons)) {
    const t = job.nextRun(new Date(now))?.getTime();
    if (t !== undefined && t > now && (best === null || t < best.time)) best = { cron, time: t };
  }
  return best;
}
