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

/** The prefix of every volunteer's host id and name; operators' hosts should not use it. */
export const VOLUNTEER_ID_PREFIX = 'vol-';

/**
 * A volunteer's host id as everyone knows it (signaling, bans, the ingresses' pools):
 * `vol-<invite>-<tab id>`, derived from the token's subject, which signaling verified, and the
 * id the tab chose. A volunteer can therefore never take an operator host's id (those do not
 * start with `vol-<its invite>-`), nor another invite's, and a ban on it hits only that tab.
 * Idempotent: an id already in this form is kept.
 */
export function volunteerHostId(sub: string | undefined, tabId: string): string {
  const clean = (s: string, max: number) => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, max);
  const prefix = `${VOLUNTEER_ID_PREFIX}${clean(sub ?? '', 64)}-`;
  if (tabId.startsWith(prefix)) return clean(tabId, prefix.length + 64);
  return prefix + clean(tabId, 64);
}

/**
 * A volunteer's display name (the `dcdn-host` header, health, logs): what the tab chose, with
 * `vol-` in front unless it already starts with `vol-` or `volunteer-`, so a volunteer cannot
 * pass for the operator's `tab-1`.
 */
export function volunteerName(name: string): string {
  return name.startsWith(VOLUNTEER_ID_PREFIX) || name.startsWith('volunteer-') ? name : `${VOLUNTEER_ID_PREFIX}${name}`;
}
