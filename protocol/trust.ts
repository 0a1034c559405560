/**
 * Who a host is, as signaling knows it from its token (never from what the host says):
 * an operator's host runs every app; a volunteer (a host token with the `volunteer` scope, as
 * `dcdn invite` mints) runs only apps deployed with `--volunteers`, and of those only the ones
 * its invite names (`app:NAME` scope items), and never gets their secrets.
 *
 * Runtime-neutral: the ingress applies the same rules to the peer info signaling hands it.
 */
import type { AppConfig } from './app-config.ts';

/** The scope item that marks a volunteer's host token. */
export const VOLUNTEER_SCOPE = 'volunteer';
/** Scope items `app:NAME` limit a volunteer to those apps. */
export const APP_SCOPE_PREFIX = 'app:';

export interface HostTrust {
  volunteer: boolean;
  /** The apps a volunteer's invite names; null for any app deployed with `--volunteers`. */
  apps: string[] | null;
}

export const OPERATOR_TRUST: HostTrust = { volunteer: false, apps: null };

/** The trust a host token's scope grants. */
export function trustFromScope(scope: readonly string[] | undefined): HostTrust {
  if (!scope?.includes(VOLUNTEER_SCOPE)) return OPERATOR_TRUST;
  const apps = scope.filter((s) => s.startsWith(APP_SCOPE_PREFIX)).map((s) => s.slice(APP_SCOPE_PREFIX.length));
  return { volunteer: true, apps: apps.length > 0 ? apps : null };
}

/** The scope of a volunteer invite for `apps` (all volunteer apps when empty). */
export function volunteerScope(apps: readonly string[] = []): string[] {
  return [VOLUNTEER_SCOPE, ...apps.map((a) => `${APP_SCOPE_PREFIX}${a}`)];
}

/** Whether a host with `trust` may run `app` (its name and deploy config). */
export function mayRun(trust: HostTrust, app: { name: string; config: Pick<AppConfig, 'volunteers'> }): boolean {
  if (!trust.volunteer) return true;
  return app.config.volunteers && (trust.apps === null || trust.apps.includes(app.name));
}
