/**
 * The STUN/TURN flags of `dcdn signal` and `dcdn up`: signaling hands these servers to every
 * peer, TURN with fresh coturn REST credentials per connection (signaling/turn.ts, docs/turn.md).
 * And the WebRTC network flags of `dcdn ingress`: the addresses it advertises, its own
 * STUN/TURN servers, ICE-lite and the WebSocket-fallback timeout (docs/deploy-multi-machine.md).
 */
import { isIP } from 'node:net';
import { reachableIceServers, type OffererOptions } from '../ingress/offerer.ts';
// turn.ts, not the signaling index: `dcdn --help` prints these flags without loading the server.
import { iceServerSource, TURN_TTL_DEFAULT_SECONDS, type IceConfig } from '../signaling/turn.ts';
import { intFlag, UsageError, type FlagSpec } from './args.ts';
import { asFlagError } from './option-flags.ts';

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
    throw asFlagError(err);
  }
  return config;
}

/** What the data channel waits before that host falls back to WebSocket (CONNECTOR_DEFAULTS). */
export const RTC_OPEN_TIMEOUT_DEFAULT_MS = 10_000;

/** `dcdn ingress`'s WebRTC network flags. */
export const ingressIceFlags = {
  'ice-address': {
    type: 'string',
    multiple: true,
    help: "IP address put in the ingress's ICE candidates: one of this machine's that hosts can reach, or its 1:1 NAT's public address (repeatable; default 127.0.0.1, loopback only: hosts on this machine only)",
  },
  stun: { type: 'string', multiple: true, help: "the ingress's own STUN server, used instead of signaling's, e.g. stun:stun.example.net:3478 (repeatable)" },
  turn: { type: 'string', multiple: true, help: "the ingress's own TURN server, used instead of signaling's (repeatable; needs --turn-secret)" },
  'turn-secret': iceFlags['turn-secret'],
  'turn-ttl': { ...iceFlags['turn-ttl'], help: 'seconds the ingress’s own TURN credentials stay valid (minted afresh for each connection)' },
  'ice-lite': {
    type: 'boolean',
    default: false,
    help: "use no STUN/TURN server at all, not even signaling's (ICE-lite; for an ingress with a reachable --ice-address while tabs still use TURN)",
  },
  'rtc-open-timeout': { type: 'string', default: String(RTC_OPEN_TIMEOUT_DEFAULT_MS), help: 'ms a data channel may take to open before that host is served over WebSocket instead' },
} satisfies FlagSpec;

/**
 * Reads `dcdn ingress`'s WebRTC network flags into the ingress's `rtc` options and
 * `rtcOpenTimeoutMs`. Without `--ice-address` the ingress stays loopback-only; without
 * `--stun`/`--turn`/`--ice-lite` it uses what signaling hands out. Either way it contacts only
 * servers the operator named (rtc-peer.ts `buildWeriftConfig`). `name` names the ingress's own
 * TURN credentials (`<expiry>:<name>` in coturn's log).
 */
export function ingressRtcFromFlags(values: Record<string, unknown>, name: string, env: NodeJS.ProcessEnv = process.env): { rtc: OffererOptions; rtcOpenTimeoutMs: number } {
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === undefined ? [] : [String(v)]);
  const addresses = list(values['ice-address']).map((a) => a.trim().replace(/^\[(.*)\]$/, '$1'));
  for (const address of addresses) {
    if (isIP(address) === 0) throw new UsageError(`--ice-address must be an IP address (of this machine, or its 1:1 NAT), got ${JSON.stringify(address)}`);
    // Candidates carry it as it is: hosts must be able to send to it.
    if (/^(0\.0\.0\.0|::|0:0:0:0:0:0:0:0)$/.test(address)) throw new UsageError(`--ice-address must be an address hosts can reach, not the wildcard ${address} (use --host ${address} for listening)`);
  }
  const rtc: OffererOptions = addresses.length > 0 ? { advertisedAddresses: [...new Set(addresses)] } : {};
  const ice = iceConfigFromFlags(values, env);
  if (values['ice-lite'] === true) {
    if (ice) throw new UsageError('--ice-lite uses no STUN/TURN server; drop it or drop --stun/--turn');
    // An explicit empty list: werift runs ICE-lite and signaling's servers are ignored.
    rtc.iceServers = [];
  } else if (ice) {
    const source = iceServerSource(ice)!;
    // coturn splits the username at its first ':'.
    const id = name.replace(/[^A-Za-z0-9._-]/g, '-');
    // A loopback-only ingress binds its sockets to loopback: a server at another address is
    // unreachable. (A name may resolve to loopback, as `localhost` does, so names pass.)
    const unreachable = reachableIceServers(source.forPeer(id), rtc.advertisedAddresses).dropped.filter((url) => isIP(iceUrlHost(url)) !== 0);
    if (unreachable.length > 0) {
      throw new UsageError(`${unreachable.join(', ')}: a loopback-only ingress cannot reach it; add --ice-address with an address of this machine that reaches it`);
    }
    // Read afresh for every connection (host-connector.ts takes `rtc.iceServers` as it is, per
    // offer), so each TURN allocation gets credentials valid for --turn-ttl from then on.
    Object.defineProperty(rtc, 'iceServers', { enumerable: true, configurable: true, get: () => source.forPeer(id) });
  }
  return { rtc, rtcOpenTimeoutMs: intFlag(values['rtc-open-timeout'] ?? RTC_OPEN_TIMEOUT_DEFAULT_MS, 'rtc-open-timeout', 1) };
}

/** The host of a `stun:`/`turn:` URL, IPv6 brackets removed. */
function iceUrlHost(url: string): string {
  return /^(?:stuns?|turns?):(\[[^\]]*\]|[^:?]*)/i.exec(url.trim())?.[1]?.replace(/^\[(.*)\]$/, '$1') ?? '';
}
