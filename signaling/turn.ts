/**
 * ICE servers for peers: the operator's STUN URLs as they are, and TURN URLs with short-lived
 * credentials in the TURN REST API scheme that coturn checks with `use-auth-secret` and
 * `static-auth-secret` (coturn's README.turnserver, "TURN REST API"; draft-uberti-behave-turn-rest):
 *
 * ```
 * username   = "<expiry, unix seconds>:<id>"
 * credential = base64(HMAC-SHA1(key = shared secret, message = username))
 * ```
 *
 * coturn refuses a username whose timestamp is in the past, so the timestamp is the expiry, not
 * the issue time. Only signaling knows the secret; peers only ever see credentials.
 */
import { createHmac } from 'node:crypto';
// errors.ts, not the index: `dcdn --help` loads this file for its defaults, and the index
// loads msgpackr (tools/check-boundaries.ts names this exception).
import { DcdnError } from '../protocol/errors.ts';
import type { IceServer } from '../protocol/index.ts';

/** Default lifetime of TURN credentials, in seconds. */
export const TURN_TTL_DEFAULT_SECONDS = 3600;
/** Shortest lifetime accepted: signaling refreshes at half-life, and its heartbeat runs every few seconds. */
export const TURN_TTL_MIN_SECONDS = 60;

/** What the operator configures (`dcdn signal --stun URL --turn URL --turn-secret S --turn-ttl N`). */
export interface IceConfig {
  /** STUN URLs (`stun:host[:port]`, RFC 7064), handed to every peer as they are. */
  stun?: string[];
  /** TURN URLs (`turn:host[:port][?transport=udp|tcp]`, `turns:`, RFC 7065); each peer gets its own credentials. */
  turn?: string[];
  /** coturn's `static-auth-secret`. Required with `turn`. */
  turnSecret?: string;
  /** Lifetime of each peer's TURN credentials. Default {@link TURN_TTL_DEFAULT_SECONDS}. */
  turnTtlSeconds?: number;
  /** Clock for the expiry, ms since the epoch. Default `Date.now`; tests use it to mint expired credentials. */
  now?: () => number;
}

/** One peer's TURN credentials. */
export interface TurnCredentials {
  username: string;
  credential: string;
  /** When coturn stops accepting them, unix seconds (also the username's prefix). */
  expiresAt: number;
}

const URL_PATTERN = /^(stuns?|turns?):(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/;

/**
 * Mints TURN REST API credentials for `id`, valid for `ttlSeconds` from `nowMs`.
 *
 * @example
 * ```ts
 * const c = turnCredentials('coturn-static-auth-secret', 'peer-1', 3600);
 * // { username: '1767229200:peer-1', credential: 'k3F...=', expiresAt: 1767229200 }
 * ```
 */
export function turnCredentials(secret: string, id: string, ttlSeconds: number, nowMs: number = Date.now()): TurnCredentials {
  if (secret.length === 0) throw new TypeError('the TURN secret must not be empty');
  // coturn splits the username at its first ':' (rest-api-separator); keep the id free of one.
  if (id.includes(':')) throw new TypeError(`a TURN credential id must not contain ':': ${id}`);
  if (!(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) throw new RangeError(`ttlSeconds must be a positive whole number, got ${ttlSeconds}`);
  const expiresAt = Math.floor(nowMs / 1000) + ttlSeconds;
  const username = id === '' ? String(expiresAt) : `${expiresAt}:${id}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAt };
}

/**
 * Checks an operator's ICE configuration and returns how to hand it to peers: `forPeer(id)`
 * gives the `iceServers` for one signaling connection (fresh TURN credentials named after it),
 * and `refreshAfterMs` says when those credentials should be replaced (half their lifetime;
 * null without TURN). Returns null when nothing is configured.
 *
 * @throws {DcdnError} SIG_BAD_OPTION naming the option at fault (`stun`, `turn`, `turnSecret`,
 *   `turnTtlSeconds`, in backticks).
 *
 * @example
 * ```ts
 * const ice = iceServerSource({ turn: ['turn:turn.example.net:3478?transport=udp'], turnSecret });
 * ice?.forPeer(conn.id); // [{ urls: ['turn:...'], username: '1767229200:<id>', credential: '...' }]
 * ```
 */
export function iceServerSource(config: IceConfig | undefined): { forPeer(id: string): IceServer[]; refreshAfterMs: number | null } | null {
  const stun = (config?.stun ?? []).map((u) => u.trim());
  const turn = (config?.turn ?? []).map((u) => u.trim());
  for (const url of stun) checkUrl(url, 'stun');
  for (const url of turn) checkUrl(url, 'turn');
  const secret = config?.turnSecret;
  if (turn.length > 0 && !secret) throw bad('`turn` needs `turnSecret`: coturn use-auth-secret credentials are minted from it');
  if (turn.length === 0 && secret) throw bad('`turnSecret` was given without any `turn` URL');
  const ttl = config?.turnTtlSeconds ?? TURN_TTL_DEFAULT_SECONDS;
  if (!(Number.isInteger(ttl) && ttl >= TURN_TTL_MIN_SECONDS)) throw bad(`\`turnTtlSeconds\` must be a whole number of seconds >= ${TURN_TTL_MIN_SECONDS}, got ${ttl}`);
  if (stun.length === 0 && turn.length === 0) return null;
  const now = config?.now ?? Date.now;
  return {
    forPeer(id) {
      const servers: IceServer[] = [];
      if (stun.length > 0) servers.push({ urls: [...stun] });
      if (turn.length > 0 && secret) {
        const { username, credential } = turnCredentials(secret, id, ttl, now());
        servers.push({ urls: [...turn], username, credential });
      }
      return servers;
    },
    refreshAfterMs: turn.length > 0 ? (ttl * 1000) / 2 : null,
  };
}

function checkUrl(url: string, kind: 'stun' | 'turn'): void {
  const match = URL_PATTERN.exec(url);
  const scheme = match?.[1]?.toLowerCase();
  const flag = `\`${kind}\``;
  if (!match || !scheme?.startsWith(kind)) {
    const shape = kind === 'stun' ? 'stun:host[:port]' : 'turn:host[:port][?transport=udp|tcp] or turns:host[:port]';
    throw bad(`${flag} ${JSON.stringify(url)} is not a ${kind.toUpperCase()} URL (${shape})`);
  }
  if (kind === 'stun' && match[4] !== undefined) throw bad(`${flag} ${JSON.stringify(url)}: STUN URLs take no ?transport= (RFC 7064)`);
  const port = match[3];
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) throw bad(`${flag} ${JSON.stringify(url)}: port out of range`);
}

/** A configuration error naming the option at fault (cli/ maps option names to its flags). */
function bad(message: string): DcdnError {
  return new DcdnError('SIG_BAD_OPTION', message);
}
