/**
 * How one scheduled run ended (docs/apps.md, "Cron triggers"): what signaling's control store
 * keeps as an app's last run and what its control API answers (`GET /v1/apps`,
 * `POST /v1/apps/NAME/cron/trigger`), which `dcdn apps` and `dcdn cron trigger` print. One shape
 * for both ends, so the store and the CLI cannot drift apart.
 */
export interface CronRun {
  /** When signaling asked for it (ISO 8601). */
  at: string;
  /** `controller.scheduledTime`: the tick (ms since the epoch), or the time of `dcdn cron trigger`. */
  scheduledTime: number;
  /** `controller.cron`. */
  cron: string;
  /** A tick of the schedule, or `dcdn cron trigger`. */
  trigger: 'schedule' | 'manual';
  ok: boolean;
  /** The error code when not ok (HOST_HANDLER_ERROR, CRON_NO_INGRESS, INGRESS_NO_HOST, CRON_TIMEOUT, ...). */
  code?: string;
  /** The error (message and stack) when not ok. */
  error?: string;
  /** The host that ran it, and the ingress that asked it. */
  host?: string;
  ingress?: string;
  /** How long the run took, as the ingress measured it (ms). */
  ms: number;
}
