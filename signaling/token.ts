/**
 * Signed bearer tokens for the signaling service (Node only: uses node:crypto).
 *
 * Format: `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "v1.<claims part>"))>`.
 * A JWT would do, but a fixed algorithm and one version prefix leave nothing for an attacker to
 * negotiate (no `alg: none`, no key confusion), and the whole verifier fits on one screen.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SignalingError } from '../protocol/index.ts';

/** Who holds a token: a browser tab serving apps, the HTTP ingress, or a human operator. */
export type Role = 'host' | 'ingress' | 'operator';

/** The verified contents of a token. Times are unix seconds. */
export interface Claims {
  role: Role;
  /** Free-form subject (e.g. a volunteer or machine name), kept in the peer's PeerInfo. */
  sub?: string;
  exp: number;
  iat: number;
  scope?: string[];
}

/** What {@link mintToken} needs; `exp` and `iat` are derived from `ttlSeconds` and the clock. */
export interface MintClaims {
  role: Role;
  sub?: string;
  ttlSeconds: number;
  scope?: string[];
}

/** Shortest secret accepted, in characters (e.g. `randomBytes(32).toString('base64url')`). */
export const MIN_SECRET_LENGTH = 16;
/** Longest token accepted, in characters; bounds the work an attacker can make us do. */
export const MAX_TOKEN_LENGTH = 4096;
const MAX_SUB_LENGTH = 256;
const MAX_SCOPE_ITEMS = 32;
const MAX_SCOPE_ITEM_LENGTH = 128;
const VERSION = 'v1';
const ROLES: readonly Role[] = ['host', 'ingress', 'operator'];
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Creates a signed token.
 *
 * @param now Current time in unix seconds; tests pass a fixed clock.
 * @example
 * ```ts
 * const token = mintToken(secret, { role: 'host', sub: 'tab-1', ttlSeconds: 3600 });
 * new SignalingClient({ url, token, info: { name: 'tab-1' } }).start();
 * ```
 */
export function mintToken(secret: string, claims: MintClaims, now: number = nowSeconds()): string {
  assertSecret(secret);
  if (!ROLES.includes(claims.role)) throw new TypeError(`unknown role: ${String(claims.role)}`);
  if (!Number.isFinite(claims.ttlSeconds) || claims.ttlSeconds <= 0) {
    throw new RangeError('ttlSeconds must be a positive number');
  }
  if (claims.sub !== undefined && !isBoundedString(claims.sub, MAX_SUB_LENGTH)) {
    throw new RangeError(`sub must be a string of at most ${MAX_SUB_LENGTH} characters`);
  }
  if (claims.scope !== undefined && !isScope(claims.scope)) {
    throw new RangeError(`scope must be at most ${MAX_SCOPE_ITEMS} strings of at most ${MAX_SCOPE_ITEM_LENGTH} characters`);
  }
  const iat = Math.floor(now);
  const payload: Claims = { role: claims.role, exp: iat + Math.ceil(claims.ttlSeconds), iat };
  if (claims.sub !== undefined) payload.sub = claims.sub;
  if (claims.scope !== undefined) payload.scope = [...claims.scope];
  const body = `${VERSION}.${Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url')}`;
  const token = `${body}.${sign(secret, body)}`;
  if (token.length > MAX_TOKEN_LENGTH) throw new RangeError('claims too large for a token');
  return token;
}

/**
 * Checks a token's signature, expiry and role, and returns its claims.
 *
 * Whatever `token` is (any type, any length), this returns claims or throws a
 * {@link SignalingError}: `SIG_TOKEN_INVALID` (malformed or bad signature), `SIG_TOKEN_EXPIRED`
 * or `SIG_TOKEN_SCOPE` (role not in `expectedRoles`). The signature is checked before anything
 * in the payload is believed.
 *
 * @param now Current time in unix seconds; tests pass a fixed clock.
 */
export function verifyToken(secret: string, token: unknown, expectedRoles: readonly Role[], now: number = nowSeconds()): Claims {
  assertSecret(secret);
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw invalid();
  const parts = token.split('.');
  if (parts.length !== 3) throw invalid();
  const [version, payload, signature] = parts as [string, string, string];
  if (version !== VERSION || !BASE64URL.test(payload) || !BASE64URL.test(signature)) throw invalid();

  // Compare the canonical encodings, so a token has exactly one valid spelling.
  const expected = Buffer.from(sign(secret, `${version}.${payload}`), 'ascii');
  const actual = Buffer.from(signature, 'ascii');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) throw invalid();

  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const claims = toClaims(parsed);
  if (claims === null) throw invalid();
  if (now >= claims.exp) throw new SignalingError('SIG_TOKEN_EXPIRED');
  if (!expectedRoles.includes(claims.role)) {
    throw new SignalingError('SIG_TOKEN_SCOPE', `role "${claims.role}" may not use this endpoint`);
  }
  return claims;
}

/** Copies only the known, well-typed fields; anything else in the payload is ignored. */
function toClaims(value: unknown): Claims | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const role = Object.hasOwn(value, 'role') ? (value as { role: unknown }).role : undefined;
  const exp = Object.hasOwn(value, 'exp') ? (value as { exp: unknown }).exp : undefined;
  const iat = Object.hasOwn(value, 'iat') ? (value as { iat: unknown }).iat : undefined;
  const sub = Object.hasOwn(value, 'sub') ? (value as { sub: unknown }).sub : undefined;
  const scope = Object.hasOwn(value, 'scope') ? (value as { scope: unknown }).scope : undefined;
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) return null;
  if (!Number.isSafeInteger(exp) || !Number.isSafeInteger(iat)) return null;
  if (sub !== undefined && !isBoundedString(sub, MAX_SUB_LENGTH)) return null;
  if (scope !== undefined && !isScope(scope)) return null;
  const claims: Claims = { role: role as Role, exp: exp as number, iat: iat as number };
  if (sub !== undefined) claims.sub = sub as string;
  if (scope !== undefined) claims.scope = [...(scope as string[])];
  return claims;
}

function sign(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('base64url');
}

function isBoundedString(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length <= max;
}

function isScope(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= MAX_SCOPE_ITEMS && value.every((item) => isBoundedString(item, MAX_SCOPE_ITEM_LENGTH));
}

function assertSecret(secret: string): void {
  // A short secret is a deployment bug, not hostile input: fail loudly rather than sign tokens
  // that an offline guess could forge.
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new TypeError(`the signaling secret must be a string of at least ${MIN_SECRET_LENGTH} characters`);
  }
}

function invalid(): SignalingError {
  return new SignalingError('SIG_TOKEN_INVALID');
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
