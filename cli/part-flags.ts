/**
 * The flags of `dcdn ingress` and `dcdn launch`, and how they become the Node API's options
 * (node/): every bad value is a usage error naming its flag, which the Node API never does.
 */
import { join } from 'node:path';
import { DEFAULT_HEAP_LIMIT_MB } from '../browser-host/index.ts';
import { RTC_BACKENDS, type OffererOptions, type RtcBackend } from '../ingress/index.ts';
import { launchAllowHosts as nodeLaunchAllowHosts, signalUrls, type StartIngressOptions } from '../node/index.ts';
import { intFlag, UsageError, type FlagSpec } from './args.ts';
import { ingressIceFlags, ingressRtcFromFlags } from './ice-flags.ts';
import { trafficFlags, trafficOptionsFromFlags } from './traffic-flags.ts';
import { metricsFlags, metricsOptionsFromFlags } from './metrics-flags.ts';
import { stateDir } from './state.ts';

const secretFlag = { type: 'string', help: 'signing secret shared by the network (else DCDN_SECRET)' } as const;

/** `dcdn ingress`'s flags (all but --help). */
export const ingressFlags = {
  signal: { type: 'string', short: 's', help: 'signaling address, e.g. http://127.0.0.1:8787' },
  port: { type: 'string', short: 'p', default: '8080', help: 'HTTP port' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (0.0.0.0 for every interface)' },
  name: { type: 'string', default: 'ingress', help: 'name in signaling and logs' },
  transport: { type: 'string', short: 't', default: 'webrtc', help: 'webrtc or websocket' },
  rtc: { type: 'string', default: 'werift', help: 'WebRTC stack: werift, or node-datachannel (native, optional dependency)' },
  secret: secretFlag,
  token: { type: 'string', help: 'an ingress token instead of the secret (else DCDN_TOKEN)' },
  'shutdown-grace': { type: 'string', default: '10000', help: 'on SIGTERM/SIGINT, ms in-flight requests get to finish before they are cut (a second signal exits at once)' },
  'kv-store': { type: 'string', help: "handlers' KV store: sqlite:PATH, redis://HOST:PORT (shared by several ingresses), or none (default: sqlite:$DCDN_HOME/kv.db; env DCDN_KV_STORE)" },
  'kv-min-ttl': { type: 'string', default: '60', help: 'shortest KV expirationTtl accepted, in seconds' },
  'base-domain': { type: 'string', default: 'localhost', help: 'apps answer on NAME.<base-domain> (and on /@NAME/ under any name)' },
  'public-ws': { type: 'string', help: 'base URL hosts dial for the WebSocket transport and fallback, e.g. wss://ingress.example.net (default ws://<host>:<port>)' },
  ...ingressIceFlags,
  ...trafficFlags,
  ...metricsFlags,
} satisfies FlagSpec;

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
    ...trafficOptionsFromFlags(v),
    shutdownGraceMs: intFlag(v['shutdown-grace'] ?? 10000, 'shutdown-grace'),
    kvStore: (v['kv-store'] as string | undefined) ?? env.DCDN_KV_STORE ?? `sqlite:${join(stateDir(env), 'kv.db')}`,
    kvLimits: { minTtlSeconds: intFlag(v['kv-min-ttl'] ?? 60, 'kv-min-ttl', 1) },
    ...metricsOptionsFromFlags(v, env),
  };
}

/** `dcdn launch`'s flags (all but --help). */
export const launchFlags = {
  signal: { type: 'string', short: 's', help: 'signaling address, e.g. http://signal.example.net:8787 (Chromium may always resolve its host)' },
  count: { type: 'string', short: 'n', default: '2', help: 'tabs to open' },
  name: { type: 'string', default: 'tab', help: 'tab name prefix (tabs are PREFIX-1, PREFIX-2, …)' },
  secret: secretFlag,
  token: { type: 'string', help: 'a host token instead of the secret (else DCDN_TOKEN)' },
  browser: { type: 'string', help: 'Chromium/Chrome executable (else DCDN_BROWSER, system paths, puppeteer cache)' },
  'heap-limit': { type: 'string', default: String(DEFAULT_HEAP_LIMIT_MB), help: 'memory limit per app sandbox (and per tab) in MiB, JavaScript heap, array buffers and WebAssembly memory included: an app over it is stopped (HOST_SANDBOX_CRASHED) and restarted' },
  'allow-host': {
    type: 'string',
    multiple: true,
    help: "another host name or address Chromium may resolve, e.g. each ingress's --public-ws host (WebSocket fallback), STUN/TURN servers named by host, or what apps fetch; globs like *.example.net, * for any (repeatable; default: loopback and the --signal host only)",
  },
} satisfies FlagSpec;

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
