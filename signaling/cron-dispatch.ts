/**
 * Asks this node's ingresses to run scheduled events (`cron` message) and waits for their
 * `cron-result` (docs/apps.md, "Cron triggers"). The signaling hub feeds it results and the
 * departures of its ingresses; the scheduler (cron-scheduler.ts) and `dcdn cron trigger` call
 * {@link CronDispatch.run}.
 *
 * One ingress at a time, in random order: one that answers it has no host for the app here
 * (INGRESS_NO_HOST, INGRESS_HOSTS_BUSY, INGRESS_UNKNOWN_APP) hands the run to the next. Any other answer, ok or not,
 * is the outcome, and so is an ingress that leaves or stays silent: a run that may have reached
 * a host is never run again (it may have had effects).
 */
import { randomUUID } from 'node:crypto';
import type { CronMessage, CronResultMessage } from '../protocol/index.ts';

/** How long the whole run may take, as signaling waits for it (handler and ctx.waitUntil work). */
export const DEFAULT_CRON_RUN_TIMEOUT_MS = 60_000;

/** Answers that mean "this ingress could not place it", so the next ingress is asked. */
const TRY_NEXT = new Set(['INGRESS_NO_HOST', 'INGRESS_HOSTS_BUSY', 'INGRESS_UNKNOWN_APP']);

/** A local ingress the dispatch may ask. */
export interface CronIngress {
  id: string;
  name: string;
  send(message: CronMessage): void;
}

/** How a run went, as the ingress (or the lack of one) tells it. */
export interface CronOutcome {
  ok: boolean;
  code: string;
  error: string;
  host: string;
  ingress: string;
  ms: number;
}

interface Pending {
  ingress: string;
  settle(result: CronResultMessage | null): void;
}

export class CronDispatch {
  readonly #ingresses: () => CronIngress[];
  readonly #pending = new Map<string, Pending>();

  /** @param ingresses this node's welcomed ingresses, now */
  constructor(ingresses: () => CronIngress[]) {
    this.#ingresses = ingresses;
  }

  /** Whether this node has an ingress to ask (a node without one lets others claim ticks first). */
  get hasIngress(): boolean {
    return this.#ingresses().length > 0;
  }

  /**
   * Runs `app`'s scheduled handler once through one of this node's ingresses.
   *
   * @param timeoutMs bounds the whole run; past it the outcome is CRON_TIMEOUT (the host may
   *   still finish it: the run is not retried).
   */
  async run(app: string, cron: string, scheduledTime: number, timeoutMs = DEFAULT_CRON_RUN_TIMEOUT_MS): Promise<CronOutcome> {
    const deadline = Date.now() + timeoutMs;
    const order = shuffle(this.#ingresses());
    let last: CronOutcome = { ok: false, code: 'CRON_NO_INGRESS', error: 'no ingress is connected to signaling to run the scheduled event', host: '', ingress: '', ms: 0 };
    for (const ingress of order) {
      const left = deadline - Date.now();
      if (left <= 0) return { ...last, ok: false, code: 'CRON_TIMEOUT', error: `no outcome within ${timeoutMs} ms` };
      const id = randomUUID();
      const result = await new Promise<CronResultMessage | null>((resolve) => {
        const timer = setTimeout(() => pending.settle(null), left);
        const pending: Pending = {
          ingress: ingress.id,
          settle: (r) => {
            if (this.#pending.get(id) !== pending) return;
            this.#pending.delete(id);
            clearTimeout(timer);
            resolve(r);
          },
        };
        this.#pending.set(id, pending);
        try {
          ingress.send({ type: 'cron', id, app, cron, scheduledTime });
        } catch {
          pending.settle({ type: 'cron-result', id, ok: false, code: 'CRON_NO_INGRESS', error: `ingress ${ingress.name} could not be asked`, host: '', ms: 0 });
        }
      });
      if (result === null) {
        // Asked but no answer: the run may be under way there, so it is not handed on (at most
        // once beats at least once for a job that may have effects); the next tick runs.
        if (Date.now() >= deadline) return { ok: false, code: 'CRON_TIMEOUT', error: `ingress ${ingress.name} gave no outcome within ${timeoutMs} ms`, host: '', ingress: ingress.name, ms: timeoutMs };
        return { ok: false, code: 'CRON_NO_INGRESS', error: `ingress ${ingress.name} left before it answered; whether the run happened is unknown`, host: '', ingress: ingress.name, ms: 0 };
      }
      const outcome: CronOutcome = { ok: result.ok, code: result.ok ? '' : result.code || 'HOST_HANDLER_ERROR', error: result.ok ? '' : result.error, host: result.host, ingress: ingress.name, ms: result.ms };
      if (outcome.ok || !TRY_NEXT.has(outcome.code)) return outcome;
      last = outcome;
    }
    return last;
  }

  /** An ingress answered: only the one asked may settle a run. */
  onResult(ingressId: string, message: CronResultMessage): void {
    const pending = this.#pending.get(message.id);
    if (pending?.ingress === ingressId) pending.settle(message);
  }

  /** An ingress left: its runs are settled as unanswered. */
  ingressGone(ingressId: string): void {
    for (const p of [...this.#pending.values()]) if (p.ingress === ingressId) p.settle(null);
  }

  /** Settles every run in flight as unanswered (signaling is closing). */
  close(): void {
    for (const p of [...this.#pending.values()]) p.settle(null);
  }
}

function shuffle<T>(list: T[]): T[] {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
