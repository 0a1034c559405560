/**
 * The STUN/TURN flags of `dcdn signal` and `dcdn up`: signaling hands these servers to every
 * peer, TURN with fresh coturn REST credentials per connection (signaling/turn.ts, docs/turn.md).
 */
import { iceServerSource, TURN_TTL_DEFAULT_SECONDS, type IceConfig } from '../signaling/index.ts';
import { intFlag, UsageError, type FlagSpec } from './args.ts';

export const iceFlags = {
  stun: { type: 'string', multiple: true, help: 'STUN server for hosts and ingresses, e.g. stun:stun.example.net:3478 (repeatable)' },
  turn: { type: 'string', multiple: true, help: 'TURN server, e.g. turn:turn.example.net:3478?transport=udp (repeatable; needs --turn-secret)' },
  'turn-secret': { type: 'string', help: "coturn's static-auth-secret, to mint credentials (else DCDN_TURN_SECRET; prefer the variable)" },
  'turn-ttl': { type: 'string', default: String(TURN_TTL_DEFAULT_SECONDS), help: 'seconds each peer’s TURN credentials stay valid (refreshed at half-life)' },
} satisfies FlagSpec;

/**
 * Reads the ICE flags; undefined when none were given. A bad URL or a missing secret is a
 * usage error naming the flag.
 */
export function iceConfigFromFlags(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): IceConfig | undefined {
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);
  const turn = list(values.turn);
  const config: IceConfig = {
    stun: list(values.stun),
    turn,
    turnTtlSeconds: intFlag(values['turn-ttl'] ?? TURN_TTL_DEFAULT_SECONDS, 'turn-ttl', 1),
  };
  // The variable may be set for a whole shell; only the flag is an error without --turn.
  const secret = (values['turn-secret'] as string | undefined) ?? (turn.length > 0 ? env.DCDN_TURN_SECRET : undefined);
  if (secret !== undefined) config.turnSecret = secret;
  try {
    if (iceServerSource(config) === null) return undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return config;
}
