/**
 * How the flags of `dcdn ingress` and `dcdn launch` become the Node API's options (node/):
 * every bad value is a usage error naming its flag, which the Node API never does.
 */
import { join } from 'node:path';
import { RTC_BACKENDS, type OffererOptions, type RtcBackend } from '../ingress/index.ts';
import { launchAllowHosts as nodeLaunchAllowHosts, signalUrls, type StartIngressOptions } from '../node/index.ts';
import { intFlag, UsageError } from './args.ts';
import { ingressRtcFromFlags } from './ice-flags.ts';
import { trafficOptionsFromFlags } from './traffic-flags.ts';
import { metricsOptionsFromFlags, otlpOptionsFromFlags, parseListen, timingOptionsFromFlags } from './metrics-flags.ts';
import { stateDir } from './state.ts';
import { sqlOptionsFromFlags } from './sql-flags.ts';

// The flag specs live with the other commands' (command-flags.ts: help loads nothing heavy).
export { ingressFlags, launchFlags } from './command-flags.ts';

/**
 * Turns `dcdn ingress`'s flags (and DCDN_SECRET, DCDN_TOKEN, DCDN_KV_STORE, DCDN_TURN_SECRET,
 * DCDN_HOME) into {@link startIngress}'s options. Every bad value is a usage error naming its flag.
 */
export function ingressOptionsFromFlags(v: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Omit<StartIngressOptions, 'log'> & { rtc: OffererOptions } {
  if (!v.signal) throw new UsageError('--signal URL is required');
  const transport = String(v.transport ?? 'webrtc');
  if (transport !== 'webrtc' && transport !== 'websocket') throw new UsageError(`--transport must be webrtc or websocket, got ${transport}`);
  const rtcBackend = String(v.rtc ?? 'werift') as RtcBackend;
  if (!RTC_BACKENDS.includes(rtcBackend)) throw new UsageError(`--rtc must be ${RTC_BACKENDS.join(' or ')}, got ${rtcBackend}`);
  let signalUrl: string;
  try {
    signalUrl = signalUrls(String(v.signal)).ws;
  } catch {
    throw new UsageError(`--signal must be a URL such as http://signal.example.net:8787, got ${JSON.stringify(v.signal)}`);
  }
  const publicWs = v['public-ws'] as string | undefined;
  if (publicWs !== undefined && !/^wss?:\/\/[^/\s?#]+(\/[^\s?#]*)?$/.test(publicWs)) {
    throw new UsageError(`--public-ws must be ws://HOST[:PORT][/PATH] or wss://…, got ${JSON.stringify(publicWs)}`);
  }
  const baseDomain = String(v['base-domain'] ?? 'localhost');
  if (!/^[A-Za-z0-9.-]+$/.test(baseDomain)) throw new UsageError(`--base-domain must be a DNS name, got ${JSON.stringify(baseDomain)}`);
  const name = String(v.name ?? 'ingress');
  const { rtc, rtcOpenTimeoutMs } = ingressRtcFromFlags(v, name, env);
  const region = String(v.region ?? 'default');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(region)) throw new UsageError(`--region must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(region)}`);
  const weight = Number(v.weight ?? 1);
  if (!Number.isFinite(weight) || weight <= 0 || weight > 1000) throw new UsageError(`--weight must be a number over 0 and at most 1000, got ${JSON.stringify(v.weight)}`);
  const peerListen = v['peer-listen'] === undefined ? undefined : parseListen(String(v['peer-listen']), 'peer-listen');
  const peerUrl = v['peer-url'] as string | undefined;
  if (peerUrl !== undefined && !/^https?:\/\/[^/\s?#]+\/?$/.test(peerUrl)) throw new UsageError(`--peer-url must be http://HOST[:PORT], got ${JSON.stringify(peerUrl)}`);
  if (peerUrl !== undefined && peerListen === undefined) throw new UsageError('--peer-url needs --peer-listen (the listener it names)');
  const secret = (v.secret as string | undefined) ?? env.DCDN_SECRET;
  const token = (v.token as string | undefined) ?? env.DCDN_TOKEN;
  return {
    signalUrl,
    ...(secret !== undefined ? { secret } : {}),
    ...(token !== undefined ? { token } : {}),
    port: intFlag(v.port ?? 8080, 'port'),
    host: String(v.host ?? '127.0.0.1'),
    name,
    transport,
    rtcBackend,
    rtc,
    rtcOpenTimeoutMs,
    ...(publicWs !== undefined ? { publicWsBase: publicWs.replace(/\/$/, '') } : {}),
    routing: { baseDomain },
    region,
    weight,
    ...(peerListen ? { peerListen } : {}),
    ...(peerUrl !== undefined ? { peerUrl: peerUrl.replace(/\/$/, '') } : {}),
    detachGraceMs: intFlag(v['detach-grace'] ?? 30000, 'detach-grace'),
    cronTimeoutMs: intFlag(v['cron-timeout'] ?? 60000, 'cron-timeout', 1),
    ...trafficOptionsFromFlags(v),
    shutdownGraceMs: intFlag(v['shutdown-grace'] ?? 10000, 'shutdown-grace'),
    kvStore: (v['kv-store'] as string | undefined) ?? env.DCDN_KV_STORE ?? `sqlite:${join(stateDir(env), 'kv.db')}`,
    kvLimits: { minTtlSeconds: intFlag(v['kv-min-ttl'] ?? 60, 'kv-min-ttl', 1) },
    ...sqlOptionsFromFlags(v, stateDir(env), env),
    ...metricsOptionsFromFlags(v, env),
    ...otlpOptionsFromFlags(v),
    ...timingOptionsFromFlags(v),
  };
}

/**
 * The host patterns Chromium may resolve for tabs joining `signalHttp` (node/'s
 * {@link nodeLaunchAllowHosts}), with a bad `--allow-host` value reported as a usage error.
 */
export function launchAllowHosts(signalHttp: string, extra: readonly string[] = []): string[] {
  try {
    return nodeLaunchAllowHosts(signalHttp, extra);
  } catch (err) {
    // The Node API names what it was given; the user gave it as --allow-host.
    throw new UsageError(`--allow-host: ${(err as Error).message}`);
  }
}
