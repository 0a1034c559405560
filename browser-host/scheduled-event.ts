/**
 * A scheduled event in the tab (docs/apps.md, "Cron triggers"): the Workers `scheduled(controller,
 * env, ctx)` handler, called for a stream whose head carries the `DCDN-SCHEDULED` method
 * (protocol/scheduled-wire.ts). Page code shared by the sandbox worker and the in-page runtime.
 *
 * The run is over when the handler's promise and every `ctx.waitUntil()` promise settled
 * (promises added while waiting are waited for too); it fails if any of them rejects, as a
 * Workers cron event's outcome does. The host's per-request wall limit bounds it.
 */
// A leaf import: this file is bundled into every sandbox worker (see tools/check-boundaries.ts).
import { SCHEDULED_HEADERS } from '../protocol/scheduled-wire.ts';

/** `controller` as in Workers' `ScheduledController`. */
export interface ScheduledController {
  readonly cron: string;
  readonly scheduledTime: number;
  /** Accepted for compatibility: a failed run is never retried before the next tick anyway. */
  noRetry(): void;
}

/** What a module may export for scheduled events. */
export interface ScheduledModule {
  scheduled?: (controller: ScheduledController, env: Record<string, unknown>, ctx: { waitUntil(p: Promise<unknown>): void; passThroughOnException(): void }) => unknown;
}

/** The controller for a scheduled event's request headers. */
export function scheduledController(headers: ReadonlyArray<readonly [string, string]>): ScheduledController {
  const get = (name: string) => headers.find(([n]) => n.toLowerCase() === name)?.[1] ?? '';
  const time = Number(get(SCHEDULED_HEADERS.scheduledTime));
  return Object.freeze({ cron: get(SCHEDULED_HEADERS.cron), scheduledTime: Number.isFinite(time) ? time : Date.now(), noRetry: () => {} });
}

/**
 * Calls `app.scheduled` and waits for it and its `waitUntil` work.
 *
 * @throws what the handler or a `waitUntil` promise rejected with; an Error when the module has no `scheduled()`.
 */
export async function runScheduledHandler(app: ScheduledModule, headers: ReadonlyArray<readonly [string, string]>, env: Record<string, unknown>): Promise<void> {
  if (typeof app.scheduled !== 'function') throw new TypeError('the app has no scheduled() handler: export default { async scheduled(controller, env, ctx) { ... } }');
  const waits: Promise<unknown>[] = [];
  const ctx = { waitUntil: (p: Promise<unknown>) => void waits.push(Promise.resolve(p)), passThroughOnException: () => {} };
  await app.scheduled(scheduledController(headers), env, ctx);
  for (let seen = 0; seen < waits.length; seen = waits.length) await Promise.all(waits.slice(seen));
}
