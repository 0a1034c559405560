/**
 * Asks ingresses to run scheduled events (`cron` message) and waits for their `cron-result`
 * (docs/apps.md, "Cron triggers"). This node's own ingresses come first; in a cluster, the
 * ingresses of other nodes are asked through the node bus (bus `cron`, answered by bus
 * `cron-result`), so a tick reaches a host wherever placement put the app's hosts. The
 * signaling hub feeds it results, departures and bus messages; the scheduler
 * (cron-scheduler.ts) and `dcdn cron trigger` call {@link CronDispatch.run}.
 *
 * One ingress at a time: one that answers it has no host for the app (INGRESS_NO_HOST,
 * INGRESS_HOSTS_BUSY, INGRESS_UNKNOWN_APP), or that could not be asked at all (its node
 * unreachable), hands the run to the next. Any other answer, ok or not, is the outcome, and so
 * is an ingress that leaves or stays silent: a run that may have reached a host is never run
 * again (it may have had effects).
 */
import { randomUUID } from 'node:crypto';
import type { CronMessage, CronResultMessage } from '../protocol/index.ts';
import type { BusMessage } from './cluster/types.ts';

/** How long the whole run may take, as signaling waits for it (handler and ctx.waitUntil work). */
export const DEFAULT_CRON_RUN_TIMEOUT_MS = 60_000;

/** Answers that mean "this ingress could not place it", so the next ingress is asked. */
const TRY_NEXT = new Set(['INGRESS_NO_HOST', 'INGRESS_HOSTS_BUSY', 'INGRESS_UNKNOWN_APP']);

/** How long this node remembers a run it relays for another node (longer than any run timeout). */
const RELAY_TTL_MS = 10 * 60_000;

type CronBus = Extract<BusMessage, { t: 'cron' | 'cron-result' }>;

/** An ingress the dispatch may ask: a local one is sent to directly, a remote one over the bus. */
export interface CronIngress {
  id: string;
  name: string;
  /** Delivers the message; a rejection means it was not delivered (the next ingress is asked). */
  send(message: CronMessage): void | Promise<void>;
}

export interface CronDispatchOptions {
  /** This node's welcomed ingresses, now. */
  local: () => CronIngress[];
  /** Live ingresses of other nodes, now (none on one machine). */
  remote?: () => Array<{ id: string; name: string; node: string }>;
  /** Sends on the node bus; required with `remote`. */
  bus?: (node: string, m: CronBus) => Promise<void>;
  /** This node's id (read when a remote ingress is asked: the hub knows it only once started). */
  nodeId?: () => string;
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
  /** null: asked but unanswered (left, closed); 'undelivered': the ask never arrived. */
  settle(result: CronResultMessage | null | 'undelivered'): void;
}

export class CronDispatch {
  readonly #o: CronDispatchOptions;
  readonly #pending = new Map<string, Pending>();
  /** Runs this node relays to its ingresses for other nodes: the result goes back to `origin`. */
  readonly #relayed = new Map<string, { origin: string; ingress: string; timer: ReturnType<typeof setTimeout> }>();

  constructor(options: CronDispatchOptions) {
    this.#o = options;
  }

  /** Whether this node has an ingress of its own (a node without one lets others claim ticks first). */
  get hasIngress(): boolean {
    return this.#o.local().length > 0;
  }

  /**
   * Runs `app`'s scheduled handler once through one ingress, this node's first.
   *
   * @param timeoutMs bounds the whole run; past it the outcome is CRON_TIMEOUT (the host may
   *   still finish it: the run is not retried).
   */
  async run(app: string, cron: string, scheduledTime: number, timeoutMs = DEFAULT_CRON_RUN_TIMEOUT_MS): Promise<CronOutcome> {
    const deadline = Date.now() + timeoutMs;
    const order = [...shuffle(this.#o.local()), ...shuffle(this.#remoteIngresses())];
    let last: CronOutcome = { ok: false, code: 'CRON_NO_INGRESS', error: 'no ingress is connected to signaling to run the scheduled event', host: '', ingress: '', ms: 0 };
    for (const ingress of order) {
      const left = deadline - Date.now();
      if (left <= 0) return { ...last, ok: false, code: 'CRON_TIMEOUT', error: `no outcome within ${timeoutMs} ms` };
      const id = randomUUID();
      const result = await new Promise<CronResultMessage | null | 'undelivered'>((resolve) => {
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
          void Promise.resolve(ingress.send({ type: 'cron', id, app, cron, scheduledTime })).catch(() => pending.settle('undelivered'));
        } catch {
          pending.settle('undelivered');
        }
      });
      if (result === 'undelivered') {
        last = { ok: false, code: 'CRON_NO_INGRESS', error: `ingress ${ingress.name} could not be asked`, host: '', ingress: ingress.name, ms: 0 };
        continue;
      }
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

  /** An ingress of this node answered: a run of ours is settled, one relayed for another node is sent back. */
  onResult(ingressId: string, message: CronResultMessage): void {
    const pending = this.#pending.get(message.id);
    if (pending?.ingress === ingressId) return pending.settle(message);
    const relayed = this.#relayed.get(message.id);
    if (!relayed || relayed.ingress !== ingressId || !this.#o.bus) return;
    this.#relayed.delete(message.id);
    clearTimeout(relayed.timer);
    const { id, ok, code, error, host, ms } = message;
    void this.#o.bus(relayed.origin, { v: 1, t: 'cron-result', id, ingress: ingressId, ok, code, error, host, ms }).catch(() => undefined);
  }

  /** A bus message of ours: a run for one of this node's ingresses, or the result of one we asked elsewhere. */
  onBus(m: CronBus): void {
    if (m.t === 'cron-result') {
      const { id, ok, code, error, host, ms } = m;
      return this.onResult(m.ingress, { type: 'cron-result', id, ok, code, error, host, ms });
    }
    const target = this.#o.local().find((i) => i.id === m.ingress);
    if (!target) {
      // Gone meanwhile: answered as "not placed", so the origin asks the next ingress.
      void this.#o.bus?.(m.origin, { v: 1, t: 'cron-result', id: m.id, ingress: m.ingress, ok: false, code: 'INGRESS_NO_HOST', error: 'the ingress is no longer connected to that node', host: '', ms: 0 }).catch(() => undefined);
      return;
    }
    const timer = setTimeout(() => this.#relayed.delete(m.id), RELAY_TTL_MS);
    timer.unref?.();
    this.#relayed.set(m.id, { origin: m.origin, ingress: m.ingress, timer });
    void Promise.resolve(target.send({ type: 'cron', id: m.id, app: m.app, cron: m.cron, scheduledTime: m.scheduledTime })).catch(() => undefined);
  }

  /** An ingress left (this node's, or another's as the directory tells): its runs are settled as unanswered. */
  ingressGone(ingressId: string): void {
    for (const p of [...this.#pending.values()]) if (p.ingress === ingressId) p.settle(null);
  }

  /** Settles every run in flight as unanswered (signaling is closing). */
  close(): void {
    for (const p of [...this.#pending.values()]) p.settle(null);
    for (const r of this.#relayed.values()) clearTimeout(r.timer);
    this.#relayed.clear();
  }

  #remoteIngresses(): CronIngress[] {
    const { remote, bus, nodeId } = this.#o;
    if (!remote || !bus || !nodeId) return [];
    const origin = nodeId();
    return remote().map((r) => ({ id: r.id, name: r.name, send: (m: CronMessage) => bus(r.node, { v: 1, t: 'cron', id: m.id, ingress: r.id, app: m.app, cron: m.cron, scheduledTime: m.scheduledTime, origin }) }));
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
