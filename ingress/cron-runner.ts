/**
 * Runs one scheduled event for signaling (a `cron` message; docs/apps.md, "Cron triggers"): on
 * one host of this ingress that may run the app (the same rules as requests: scope, volunteers,
 * capabilities, draining, penalties), as a stream whose head carries the `DCDN-SCHEDULED`
 * method (protocol/scheduled-wire.ts). The tab answers 204 once `scheduled()` and its
 * `ctx.waitUntil()` work settled, or resets the stream with the handler's error. A run is never
 * retried on another host: it may have had effects.
 */
import { SCHEDULED_HEADERS, SCHEDULED_METHOD, SCHEDULED_OK_STATUS, SCHEDULED_URL, type AppRef, type Stream } from '../protocol/index.ts';
import { mayServe } from './host-traits.ts';
import type { HostPool } from './host-pool.ts';

/** How long the ingress waits for a scheduled run's outcome before it cancels it (CRON_TIMEOUT). */
export const DEFAULT_CRON_TIMEOUT_MS = 60_000;

/** How a scheduled run went (what the ingress sends back in `cron-result`). */
export interface ScheduledOutcome {
  ok: boolean;
  code: string;
  error: string;
  /** The host's name ('' when none ran it). */
  host: string;
  ms: number;
}

/**
 * Runs `app`'s scheduled handler once on a host of `pool`.
 *
 * @example
 * ```ts
 * const outcome = await runScheduled(pool, apps.get('hello'), { app: 'hello', cron: '* * * * *', scheduledTime: Date.now() }, 60_000);
 * ```
 */
export function runScheduled(pool: HostPool, ref: AppRef | undefined, event: { app: string; cron: string; scheduledTime: number }, timeoutMs = DEFAULT_CRON_TIMEOUT_MS): Promise<ScheduledOutcome> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  if (!ref) return Promise.resolve({ ok: false, code: 'INGRESS_UNKNOWN_APP', error: `no app named ${event.app} is deployed at this ingress`, host: '', ms: 0 });
  const picked = pool.pick(new Set(), Date.now(), (h) => mayServe(h.traits, ref));
  if ('error' in picked) return Promise.resolve({ ok: false, code: picked.error, error: `no host at this ingress can run ${event.app} now`, host: '', ms: 0 });
  const host = picked.host;
  let stream: Stream;
  try {
    stream = host.session.open(
      {
        method: SCHEDULED_METHOD,
        url: SCHEDULED_URL,
        headers: [
          [SCHEDULED_HEADERS.cron, event.cron],
          [SCHEDULED_HEADERS.scheduledTime, String(event.scheduledTime)],
        ],
        app: event.app,
      },
      true,
    );
  } catch (err) {
    return Promise.resolve({ ok: false, code: 'INGRESS_HOST_LOST', error: `the host session is closing: ${(err as Error).message}`, host: host.name, ms: ms() });
  }
  host.inFlight++;
  return new Promise<ScheduledOutcome>((resolve) => {
    let done = false;
    const finish = (o: Omit<ScheduledOutcome, 'host' | 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      host.inFlight--;
      resolve({ ...o, host: host.name, ms: ms() });
    };
    const timer = setTimeout(() => {
      if (!stream.closed) stream.reset('CRON_TIMEOUT', 'the scheduled run took too long');
      finish({ ok: false, code: 'CRON_TIMEOUT', error: `no outcome from ${host.name} within ${timeoutMs} ms` });
    }, timeoutMs);
    stream.onhead = (head) => {
      // Nothing of a body is wanted: a tab of this build sends none.
      stream.ondata = (chunk) => stream.consume(chunk.byteLength);
      if (head.status === SCHEDULED_OK_STATUS) {
        pool.reportSuccess(host, event.app);
        return finish({ ok: true, code: '', error: '' });
      }
      if (!stream.closed) stream.reset('PROTO_CANCELLED', 'unexpected answer to a scheduled event');
      finish({ ok: false, code: 'HOST_BAD_HANDLER_RESPONSE', error: `the host answered the scheduled event with status ${head.status}` });
    };
    stream.onreset = (err) => finish({ ok: false, code: err.code, error: err.message });
  });
}
