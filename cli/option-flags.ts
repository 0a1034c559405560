/**
 * The Node API and the parts name their options in error messages (`turnSecret`, in
 * backticks); the user typed flags. This maps one to the other, so a library never has to know
 * the CLI exists and the user still reads the flag they can fix.
 */
import { UsageError } from './args.ts';

/** Library option -> the flag (or variable) a `dcdn` user sets it with. */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  stun: '--stun',
  turn: '--turn',
  turnSecret: '--turn-secret',
  turnTtlSeconds: '--turn-ttl',
  rtcBackend: '--rtc',
  secret: '--secret',
  token: '--token',
  allowHosts: '--allow-host',
  browserPath: '--browser',
  region: '--region',
  weight: '--weight',
  peerListen: '--peer-listen',
  peerUrl: '--peer-url',
  detachGraceMs: '--detach-grace',
};

/** Codes of a malformed or missing option: the user's command line is at fault. */
const OPTION_CODES: ReadonlySet<string> = new Set(['SIG_BAD_OPTION', 'INGRESS_BAD_OPTION']);

/** A message with each `` `option` `` the map knows replaced by its flag. */
export function withFlags(message: string, flags: Readonly<Record<string, string>> = OPTION_FLAGS): string {
  return message.replace(/`([A-Za-z][A-Za-z0-9]*)`/g, (whole, name: string) => (Object.hasOwn(flags, name) ? flags[name]! : whole));
}

/**
 * `err` as the user should read it: an option error (by code) becomes a {@link UsageError}
 * naming flags; anything else is returned unchanged, to be rethrown (its message is shown
 * through {@link withFlags} by cli/main.ts).
 *
 * @example
 * ```ts
 * try { iceServerSource(config); } catch (err) { throw asFlagError(err); }
 * ```
 */
export function asFlagError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !OPTION_CODES.has(code)) return err;
  return new UsageError(withFlags((err as Error).message));
}
