/**
 * The clock of scheduled handlers (docs/apps.md, "Cron triggers"). Every signaling node runs
 * one; for each tick that falls due, every node tries to claim it in the control store with a
 * compare-and-set ({@link ControlStore.claimCronTick}), so exactly one node of the cluster runs
 * it, however many nodes there are and whatever restarted. The winner asks one ingress to run it
 * (cron-dispatch.ts: its own first, then other nodes') and records the outcome as the app's last run.
 *
 * - A node with no ingress of its own waits `claimGraceMs` past the tick before claiming, so a
 *   node that can run the tick wins it; when none can, the tick is still claimed by someone and
 *   recorded as CRON_NO_INGRESS.
 * - Ticks missed while no node ran are not replayed: on waking, only the latest tick past the
 *   last one claimed runs (once). A schedule first seen by a node starts at that moment: a
 *   deploy never runs a tick from before it.
 * - A failed run is not retried: the next tick runs as usual.
 */
import type { AppManifestEntry } from './app-store.ts';
import type { ControlStore, CronRun } from './control-store.ts';
import type { CronOutcome } from './cron-dispatch.ts';
import { latestTick, nextTick, type CronTick } from './cron-schedule.ts';

/** Defaults of {@link CronSchedulerOptions}. */
export const CRON_DEFAULTS = {
  /** How long a node without an ingress lets the others claim a tick before it does. */
  claimGraceMs: 2000,
  /** Longest sleep between looks at the schedules (deploys wake it at once anyway). */
  maxSleepMs: 60_000,
  /** How long a run may take (handler and ctx.waitUntil work) before it is recorded as CRON_TIMEOUT. */
  runTimeoutMs: 60_000,
} as const;

export interface CronSchedulerOptions {
  store: Pick<ControlStore, 'claimCronTick' | 'recordCronRun' | 'cronStates'>;
  /** The deployed apps' active versions, now (the node's control cache). */
  apps: () => AppManifestEntry[];
  /** Runs one scheduled event through an ingress of this node. */
  dispatch: { readonly hasIngress: boolean; run(app: string, cron: string, scheduledTime: number, timeoutMs: number): Promise<CronOutcome> };
  log: (level: 'info' | 'warn', message: string, fields: Record<string, unknown>) => void;
  /** Told of every run this node asked for (metrics). */
  onRun?: (run: CronRun) => void;
  /** This node's id, recorded with each run. */
  node?: string;
  claimGraceMs?: number;
  maxSleepMs?: number;
  runTimeoutMs?: number;
  /** The clock (tests inject one; fake timers work too). Default `Date.now`. */
  now?: () => number;
}

export class CronScheduler {
  readonly #o: CronSchedulerOptions;
  readonly #grace: number;
  readonly #maxSleep: number;
  readonly #runTimeout: number;
  readonly #now: () => number;
  /** Per app: ticks at or before this are never run by this node (first sight, or last claim tried). */
  readonly #floor = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #looking: Promise<void> | null = null;
  #again = false;
  #stopped = true;
  /** Runs in flight, so `stop` can wait for their records. */
  readonly #runs = new Set<Promise<void>>();

  constructor(options: CronSchedulerOptions) {
    this.#o = options;
    this.#grace = nonNegative('claimGraceMs', options.claimGraceMs ?? CRON_DEFAULTS.claimGraceMs);
    this.#maxSleep = positive('maxSleepMs', options.maxSleepMs ?? CRON_DEFAULTS.maxSleepMs);
    this.#runTimeout = positive('runTimeoutMs', options.runTimeoutMs ?? CRON_DEFAULTS.runTimeoutMs);
    this.#now = options.now ?? Date.now;
  }

  /**
   * Starts the clock. Apps with a stored last tick resume from it (the latest missed tick runs
   * once); others start now.
   */
  async start(): Promise<void> {
    this.#stopped = false;
    try {
      for (const s of await this.#o.store.cronStates()) if (s.lastTick > 0) this.#floor.set(s.app, s.lastTick);
    } catch (err) {
      this.#o.log('warn', 'cron: cannot read the cron state; schedules start now', { error: (err as Error).message });
    }
    this.poke();
  }

  /** Looks at the schedules now (after a deploy, or when the timer fires). */
  poke(): void {
    if (this.#stopped) return;
    if (this.#looking) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#looking = this.#look().finally(() => {
      this.#looking = null;
      if (this.#again) {
        this.#again = false;
        this.poke();
      }
    });
  }

  /** Stops the clock (runs in flight go on: see {@link settled}). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#looking;
  }

  /** Resolves once every run in flight has been recorded. */
  async settled(): Promise<void> {
    await Promise.all([...this.#runs]);
  }

  /**
   * Runs `app`'s scheduled handler once now (`dcdn cron trigger`), through the same path as a
   * tick, and records it as the last run. `controller.cron` is the app's first expression ('' without one).
   */
  async trigger(app: AppManifestEntry): Promise<CronRun> {
    return this.#run(app.name, { cron: app.config.crons?.[0] ?? '', time: this.#now() }, 'manual');
  }

  async #look(): Promise<void> {
    const now = this.#now();
    let wake = now + this.#maxSleep;
    for (const app of this.#o.apps()) {
      const crons = app.config.crons ?? [];
      if (crons.length === 0) {
        this.#floor.delete(app.name);
        continue;
      }
      if (!this.#floor.has(app.name)) this.#floor.set(app.name, now);
      const floor = this.#floor.get(app.name)!;
      const due = latestTick(crons, now);
      if (due && due.time > floor) {
        if (!this.#o.dispatch.hasIngress && now < due.time + this.#grace) {
          wake = Math.min(wake, due.time + this.#grace);
        } else {
          this.#floor.set(app.name, due.time);
          await this.#claim(app.name, due);
        }
      }
      const next = nextTick(crons, now);
      if (next) wake = Math.min(wake, next.time);
    }
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.poke(), Math.max(0, wake - this.#now()));
    this.#timer.unref?.();
  }

  async #claim(app: string, tick: CronTick): Promise<void> {
    let won: boolean;
    try {
      won = await this.#o.store.claimCronTick(app, tick.time);
    } catch (err) {
      // The store is down: nobody can claim, so nobody runs it; the next tick tries again.
      this.#o.log('warn', 'cron: cannot claim a tick (control store unavailable); skipped', { app, tick: new Date(tick.time).toISOString(), error: (err as Error).message });
      return;
    }
    if (!won) return;
    const run = this.#run(app, tick, 'schedule').then(
      () => undefined,
      () => undefined,
    );
    this.#runs.add(run);
    void run.finally(() => this.#runs.delete(run));
  }

  async #run(app: string, tick: CronTick, trigger: CronRun['trigger']): Promise<CronRun> {
    const at = new Date(this.#now()).toISOString();
    const outcome = await this.#o.dispatch.run(app, tick.cron, tick.time, this.#runTimeout);
    const run: CronRun = {
      at,
      scheduledTime: tick.time,
      cron: tick.cron,
      trigger,
      ok: outcome.ok,
      ms: outcome.ms,
      ...(outcome.ok ? {} : { code: outcome.code, error: outcome.error }),
      ...(outcome.host ? { host: outcome.host } : {}),
      ...(outcome.ingress ? { ingress: outcome.ingress } : {}),
    };
    const fields = { app, cron: tick.cron, scheduledTime: new Date(tick.time).toISOString(), trigger, host: outcome.host, ingress: outcome.ingress, ms: outcome.ms, node: this.#o.node };
    this.#o.onRun?.(run);
    if (outcome.ok) this.#o.log('info', 'cron: scheduled run ok', fields);
    else this.#o.log('warn', 'cron: scheduled run failed', { ...fields, code: outcome.code, error: outcome.error });
    try {
      await this.#o.store.recordCronRun(app, run);
    } catch (err) {
      this.#o.log('warn', 'cron: cannot record the run (control store unavailable)', { app, error: (err as Error).message });
    }
    return run;
  }
}

function positive(name: string, value: number): number {
  if (!(typeof value === 'number' && value > 0 && Number.isFinite(value))) throw new RangeError(`${name} must be a positive number`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(typeof value === 'number' && value >= 0 && Number.isFinite(value))) throw new RangeError(`${name} must be a number of at least 0`);
  return value;
}
