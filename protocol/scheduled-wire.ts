/**
 * Names on the scheduled-event wire (docs/apps.md, "Cron triggers"): the request head an ingress
 * sends a tab to run an app's `scheduled()` handler instead of `fetch()`. A leaf of protocol/ so
 * the sandbox worker can import it without msgpackr.
 *
 * The marker is the method: `DCDN-SCHEDULED` is a valid HTTP token (the ingress's HTTP parser
 * lets it through), so the ingress's proxy refuses it on every public request (501
 * INGRESS_NOT_IMPLEMENTED) before a host is contacted; only the ingress's cron runner, asked by
 * signaling, ever sends it. The tab answers 204 once the handler and its
 * `ctx.waitUntil()` work settled, or resets the stream with the handler's error.
 */
export const SCHEDULED_METHOD = 'DCDN-SCHEDULED';

/** The URL a scheduled event's head carries (Workers tests scheduled handlers on this path). */
export const SCHEDULED_URL = 'https://scheduled.invalid/cdn-cgi/handler/scheduled';

export const SCHEDULED_HEADERS = {
  /** `controller.cron`: the expression whose tick this is ('' for `dcdn cron trigger` without a schedule). */
  cron: 'dcdn-cron',
  /** `controller.scheduledTime`: the tick, in ms since the epoch. */
  scheduledTime: 'dcdn-scheduled-time',
} as const;

/** The status a tab answers a scheduled event that ran to the end with. */
export const SCHEDULED_OK_STATUS = 204;
