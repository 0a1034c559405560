/**
 * The join page's invite check: asks signaling (`GET /v1/whoami`) what it thinks of the invite,
 * so a volunteer learns that a link expired or is broken before pressing Join, not from a
 * connection that silently keeps retrying. Runtime-neutral: plain `fetch`, no DOM.
 */

/** What signaling said about an invite. Times are unix seconds. */
export type InviteCheck =
  | { kind: 'valid'; sub: string | null; exp: number; scope: string[] | null }
  | { kind: 'missing' }
  | { kind: 'invalid' }
  | { kind: 'expired'; exp: number | null }
  /** A valid token of another role (an ingress or operator token pasted as an invite). */
  | { kind: 'not-host'; role: string }
  /** Signaling did not answer, or not as expected; joining may still work. */
  | { kind: 'unreachable'; detail: string };

/** Where the page's origin answers; the join page is served by signaling itself. */
const WHOAMI_PATH = '/v1/whoami';
/** A check that takes longer says "could not check" rather than leave the page waiting. */
const CHECK_TIMEOUT_MS = 10_000;
/** What a bearer token may contain (RFC 6750 §2.1 b64token, and more): printable ASCII. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/**
 * Checks `invite` with the signaling server at `base` (default: this page's origin).
 *
 * @example
 * ```ts
 * const check = await checkInvite(new URLSearchParams(location.search).get('invite'));
 * const { canJoin, text } = describeInvite(check);
 * ```
 */
export async function checkInvite(invite: string | null, base = ''): Promise<InviteCheck> {
  if (invite === null || invite === '') return { kind: 'missing' };
  // A header cannot carry anything else; fetch would throw before asking the server.
  if (!TOKEN_CHARS.test(invite)) return { kind: 'invalid' };
  let response: Response;
  try {
    response = await fetch(`${base}${WHOAMI_PATH}`, {
      headers: { authorization: `Bearer ${invite}` },
      cache: 'no-store',
      signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    });
  } catch (err) {
    return { kind: 'unreachable', detail: (err as Error).message };
  }
  const body: unknown = await response.json().catch(() => null);
  if (response.ok) {
    const claims = parseClaims(body);
    if (claims === null) return { kind: 'unreachable', detail: 'unexpected answer from signaling' };
    if (claims.role !== 'host') return { kind: 'not-host', role: claims.role };
    return { kind: 'valid', sub: claims.sub, exp: claims.exp, scope: claims.scope };
  }
  switch (response.headers.get('dcdn-error') ?? errorCode(body)) {
    case 'SIG_TOKEN_MISSING':
      return { kind: 'missing' };
    case 'SIG_TOKEN_INVALID':
      return { kind: 'invalid' };
    case 'SIG_TOKEN_EXPIRED':
      return { kind: 'expired', exp: unverifiedExpiry(invite) };
    default:
      return { kind: 'unreachable', detail: `HTTP ${response.status}` };
  }
}

/**
 * A volunteer token for a network open to all (`dcdn up --open-join`), or null when it takes
 * volunteers by invite only (SIG_JOIN_CLOSED) or signaling did not answer.
 */
export async function openJoinToken(base = ''): Promise<string | null> {
  try {
    const response = await fetch(`${base}/v1/join`, { method: 'POST', cache: 'no-store', signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
    if (!response.ok) return null;
    const body = (await response.json()) as { token?: unknown };
    return typeof body.token === 'string' && TOKEN_CHARS.test(body.token) ? body.token : null;
  } catch {
    return null;
  }
}

/** The apps an invite's scope lets its host run (protocol/trust.ts), in words. */
function describeScope(scope: string[] | null): string {
  if (!scope?.includes('volunteer')) return 'A host link of the operator’s own: it runs every app on this network.';
  const apps = (scope ?? []).filter((s) => s.startsWith('app:')).map((s) => s.slice(4));
  return apps.length === 0 ? 'Covers every app the operator opened to volunteers.' : `Covers these apps: ${apps.join(', ')}.`;
}

/** What the page says about an invite, and whether Join is offered. */
export interface InviteView {
  canJoin: boolean;
  tone: 'ok' | 'warn' | 'problem';
  text: string;
  /** A second line (the apps the invite covers), when there is one. */
  detail: string | null;
}

/** Puts a check in plain words for volunteers. */
export function describeInvite(check: InviteCheck): InviteView {
  const ask = 'Ask the operator for a new link.';
  switch (check.kind) {
    case 'valid':
      return {
        canJoin: true,
        tone: 'ok',
        text: `Invite valid until ${formatDate(check.exp)}.`,
        detail: describeScope(check.scope),
      };
    case 'missing':
      return { canJoin: false, tone: 'problem', text: `This link has no invite in it. ${ask}`, detail: null };
    case 'invalid':
      return { canJoin: false, tone: 'problem', text: 'This invite is not valid: the link may be cut short or mistyped. Check you copied all of it, or ask the operator for a new one.', detail: null };
    case 'expired':
      return { canJoin: false, tone: 'problem', text: check.exp === null ? `This invite has expired. ${ask}` : `This invite expired on ${formatDate(check.exp)}. ${ask}`, detail: null };
    case 'not-host':
      return { canJoin: false, tone: 'problem', text: `This link holds an ${check.role} token, not a volunteer invite. ${ask}`, detail: null };
    case 'unreachable':
      return { canJoin: true, tone: 'warn', text: `Could not check this invite (${check.detail}). You can still try to join.`, detail: null };
  }
}

/** A unix time as the volunteer's locale writes a date and time, kept on one line. */
export function formatDate(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }).replace(/ /g, '\u00a0');
}

/**
 * The `exp` of a token, read without checking its signature. Used only after signaling answered
 * SIG_TOKEN_EXPIRED, which it does only once the signature verified, so this is the signed date.
 */
export function unverifiedExpiry(token: string): number | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const json: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
    const exp = typeof json === 'object' && json !== null ? (json as { exp?: unknown }).exp : undefined;
    return Number.isSafeInteger(exp) ? (exp as number) : null;
  } catch {
    return null;
  }
}

function parseClaims(body: unknown): { role: string; sub: string | null; exp: number; scope: string[] | null } | null {
  if (typeof body !== 'object' || body === null) return null;
  const { role, sub, exp, scope } = body as Record<string, unknown>;
  if (typeof role !== 'string' || !Number.isSafeInteger(exp)) return null;
  if (sub !== null && typeof sub !== 'string') return null;
  if (scope !== null && !(Array.isArray(scope) && scope.every((s) => typeof s === 'string'))) return null;
  return { role, sub, exp: exp as number, scope: scope as string[] | null };
}

function errorCode(body: unknown): string | null {
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === 'string' ? code : null;
}
