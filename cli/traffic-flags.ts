/**
 * The ingress's traffic limits as command-line flags, shared by `dcdn ingress` and `dcdn up`
 * (docs/ingress.md lists what each does). Defaults are the ingress's own (PROXY_DEFAULTS,
 * POOL_DEFAULTS), so a flag left out changes nothing.
 */
import { PEER_LOG_INTERVAL_MS } from '../ingress/peer-log.ts';
import { POOL_DEFAULTS } from '../ingress/pool-defaults.ts';
import { PROXY_DEFAULTS } from '../ingress/proxy-defaults.ts';
import { HTTP_CACHE_DEFAULTS } from '../ingress/cache/cache-defaults.ts';
import { WS_GATEWAY_DEFAULTS } from '../ingress/ws-defaults.ts';
import type { IngressOptions } from '../ingress/index.ts';
import { intFlag, UsageError, type FlagSpec } from './args.ts';

const ms = (n: number) => String(n);

export const trafficFlags = {
  'head-timeout': { type: 'string', default: ms(PROXY_DEFAULTS.headTimeoutMs), help: 'ms from request end to response head before 504' },
  'idle-timeout': { type: 'string', default: ms(PROXY_DEFAULTS.idleTimeoutMs), help: 'ms a request or response body may stall before it is cut' },
  'headers-timeout': { type: 'string', default: '20000', help: 'ms a client gets to send its request line and headers (slowloris guard): 408 after' },
  'min-body-rate': { type: 'string', default: String(PROXY_DEFAULTS.minBodyBytesPerSecond), help: 'bytes/s an upload must keep up after the grace time, else 408 (0: off)' },
  'body-rate-grace': { type: 'string', default: ms(PROXY_DEFAULTS.bodyRateGraceMs), help: 'ms before --min-body-rate applies to an upload' },
  'max-body': { type: 'string', default: String(PROXY_DEFAULTS.maxBodyBytes), help: 'largest request body in bytes: 413 past it' },
  'max-per-host': { type: 'string', default: String(POOL_DEFAULTS.maxInFlightPerHost), help: "requests one operator's host may have in flight" },
  'max-per-volunteer': { type: 'string', default: String(POOL_DEFAULTS.maxInFlightPerVolunteer), help: "requests one volunteer's host may have in flight" },
  'failure-threshold': { type: 'string', default: String(POOL_DEFAULTS.failureThreshold), help: 'failed requests in a row before a host is taken out of rotation' },
  'penalty-base': { type: 'string', default: ms(POOL_DEFAULTS.penaltyBaseMs), help: "ms a failing host is first out of rotation (doubles each time)" },
  'penalty-max': { type: 'string', default: ms(POOL_DEFAULTS.penaltyMaxMs), help: 'longest ms a failing host is out of rotation' },
  'penalty-decay': { type: 'string', default: ms(POOL_DEFAULTS.penaltyDecayMs), help: "ms without a failure for one step of a host's penalty to be forgiven" },
  'outcome-window': { type: 'string', default: String(POOL_DEFAULTS.outcomeWindow), help: "a host's last N requests of an app that its failure rate is measured over" },
  'outcome-min-samples': { type: 'string', default: String(POOL_DEFAULTS.outcomeMinSamples), help: 'requests of an app a host (and its peers) must have served before it is judged' },
  'outcome-max-excess': { type: 'string', default: String(Math.round(POOL_DEFAULTS.outcomeMaxExcess * 100)), help: "percentage points a host's failure rate for an app may exceed its peers' before it is taken out" },
  'peer-log-interval': { type: 'string', default: String(PEER_LOG_INTERVAL_MS), help: 'ms in which a host may cause one log line of each kind; the rest are counted (0: log every line)' },
  'cache-size': { type: 'string', default: '256MiB', help: 'memory for the HTTP cache (bytes, or with KiB/MiB/GiB); LRU past it; 0 turns the cache off (docs/cache.md)' },
  'cache-max-entry': { type: 'string', default: '8MiB', help: 'largest response body the cache stores; larger ones stream through, never buffered' },
  'cache-pass-ttl': { type: 'string', default: ms(HTTP_CACHE_DEFAULTS.passTtlMs), help: 'ms a URL whose response was not storable skips request coalescing' },
  'ws-idle-timeout': { type: 'string', default: ms(WS_GATEWAY_DEFAULTS.idleTimeoutMs), help: 'ms a WebSocket to a handler may carry no message either way before it is closed (1001)' },
  'ws-max-message': { type: 'string', default: String(WS_GATEWAY_DEFAULTS.maxMessageBytes), help: 'largest WebSocket message in bytes, either way: the socket is closed with 1009 past it' },
  'ws-max-per-host': { type: 'string', default: String(WS_GATEWAY_DEFAULTS.maxPerHost), help: 'WebSockets one host may carry at once; past it an upgrade goes to another host or gets 503' },
  'trusted-proxy': { type: 'string', multiple: true, help: 'address or CIDR of a proxy in front whose X-Forwarded-* are believed (repeatable; default none: replaced from the socket)' },
} satisfies FlagSpec;

/** The ingress options these flags set; every bad value is a usage error naming its flag. */
export function trafficOptionsFromFlags(v: Record<string, unknown>): Pick<IngressOptions, 'proxy' | 'pool' | 'headersTimeoutMs' | 'trustedProxies' | 'peerLogIntervalMs' | 'cache' | 'webSockets'> {
  const num = (flag: Exclude<keyof typeof trafficFlags, 'trusted-proxy'>, min: number) => intFlag(v[flag] ?? trafficFlags[flag].default, flag, min);
  const size = (flag: 'cache-size' | 'cache-max-entry') => sizeFlag(v[flag] ?? trafficFlags[flag].default, flag);
  const trusted = (v['trusted-proxy'] as string[] | undefined) ?? [];
  for (const entry of trusted) {
    if (!/^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(entry)) throw new UsageError(`--trusted-proxy takes an address or CIDR such as 10.0.0.0/8, got ${JSON.stringify(entry)}`);
  }
  return {
    headersTimeoutMs: num('headers-timeout', 1),
    peerLogIntervalMs: num('peer-log-interval', 0),
    ...(trusted.length > 0 ? { trustedProxies: trusted } : {}),
    cache: { maxBytes: size('cache-size'), maxEntryBytes: size('cache-max-entry'), passTtlMs: num('cache-pass-ttl', 0) },
    proxy: {
      headTimeoutMs: num('head-timeout', 1),
      idleTimeoutMs: num('idle-timeout', 1),
      minBodyBytesPerSecond: num('min-body-rate', 0),
      bodyRateGraceMs: num('body-rate-grace', 0),
      maxBodyBytes: num('max-body', 1),
    },
    webSockets: {
      idleTimeoutMs: num('ws-idle-timeout', 1),
      maxMessageBytes: num('ws-max-message', 1),
      maxPerHost: num('ws-max-per-host', 1),
    },
    pool: {
      maxInFlightPerHost: num('max-per-host', 1),
      maxInFlightPerVolunteer: num('max-per-volunteer', 1),
      failureThreshold: num('failure-threshold', 1),
      penaltyBaseMs: num('penalty-base', 1),
      penaltyMaxMs: num('penalty-max', 1),
      penaltyDecayMs: num('penalty-decay', 1),
      outcomeWindow: num('outcome-window', 1),
      outcomeMinSamples: num('outcome-min-samples', 1),
      outcomeMaxExcess: Math.min(100, num('outcome-max-excess', 0)) / 100,
    },
  };
}

/** A byte size: a whole number, optionally with B, KiB, MiB or GiB (KB, MB, GB are read as the same). */
export function sizeFlag(value: unknown, name: string): number {
  const m = /^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(String(value));
  if (!m) throw new UsageError(`--${name} takes a size such as 268435456, 256MiB or 4MiB, got ${JSON.stringify(String(value))}`);
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const n = Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} is too large`);
  return n;
}
