/**
 * The flags `dcdn ingress` and `dcdn launch` take, read the way the CLI reads them
 * (`parseFlags` with the command's own spec), down to the options the parts are started with.
 * No process, no network: the real CLI runs in test/cli-parts.e2e.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseFlags, UsageError } from '../cli/args.ts';
import { ingressFlags, ingressOptionsFromFlags, launchAllowHosts, launchFlags } from '../cli/part-flags.ts';

const env = { DCDN_HOME: '/srv/dcdn', DCDN_SECRET: 'net-secret' };
const ingress = (argv: string[], e: NodeJS.ProcessEnv = env) => ingressOptionsFromFlags(parseFlags(argv, ingressFlags), e);
const usageError = (argv: string[]) => {
  try {
    ingress(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`no usage error for ${argv.join(' ')}`);
};

afterEach(() => {
  vi.useRealTimers();
});

describe('dcdn ingress flags', () => {
  it('default to a loopback-only ingress that takes STUN/TURN from signaling', () => {
    expect(ingress(['--signal', 'http://signal.example.net:8787'])).toEqual({
      signalUrl: 'ws://signal.example.net:8787/v1/signal',
      secret: 'net-secret',
      port: 8080,
      host: '127.0.0.1',
      name: 'ingress',
      transport: 'webrtc',
      rtcBackend: 'werift',
      // No advertisedAddresses: the offerer's default, 127.0.0.1. No iceServers: signaling's.
      rtc: {},
      rtcOpenTimeoutMs: 10_000,
      routing: { baseDomain: 'localhost' },
      // Cluster placement: one region, weight 1, no peer listener (takes no forwards).
      region: 'default',
      weight: 1,
      detachGraceMs: 30_000,
      cronTimeoutMs: 60_000,
      // The ingress's own defaults, spelled out: a flag left out changes nothing.
      headersTimeoutMs: 20_000,
      peerLogIntervalMs: 10_000,
      proxy: { headTimeoutMs: 30_000, idleTimeoutMs: 60_000, minBodyBytesPerSecond: 1024, bodyRateGraceMs: 10_000, maxBodyBytes: 100 * 1024 * 1024 },
      shutdownGraceMs: 10_000,
      kvStore: 'sqlite:/srv/dcdn/kv.db',
      kvLimits: { minTtlSeconds: 60 },
      sqlStore: 'pglite:/srv/dcdn/sql',
      sqlLimits: { statementTimeoutMs: 5000, maxResultRows: 100_000, maxResultBytes: 16 * 1024 * 1024, maxStatementsPerCall: 1000, maxConcurrentPerHost: 16 },
      cache: { maxBytes: 256 * 1024 * 1024, maxEntryBytes: 8 * 1024 * 1024, passTtlMs: 30_000 },
      pool: { maxInFlightPerHost: 128, maxInFlightPerVolunteer: 16, failureThreshold: 3, penaltyBaseMs: 1000, penaltyMaxMs: 60_000, penaltyDecayMs: 60_000, outcomeWindow: 50, outcomeMinSamples: 10, outcomeMaxExcess: 0.5 },
      webSockets: { idleTimeoutMs: 300_000, maxMessageBytes: 1024 * 1024, maxPerHost: 512 },
    });
  });

  it('read the traffic limits: timeouts, body rate and size, host penalties, trusted proxies', () => {
    const opts = ingress([
      '--signal', 'http://s:1',
      '--head-timeout', '5000', '--idle-timeout', '7000', '--headers-timeout', '3000',
      '--min-body-rate', '0', '--body-rate-grace', '2000', '--max-body', '1048576',
      '--max-per-host', '32', '--max-per-volunteer', '4',
      '--failure-threshold', '5', '--penalty-base', '500', '--penalty-max', '30000', '--penalty-decay', '120000',
      '--trusted-proxy', '10.0.0.0/8', '--trusted-proxy', '::1',
      '--ws-idle-timeout', '60000', '--ws-max-message', '65536', '--ws-max-per-host', '64',
    ]);
    expect(opts).toMatchObject({
      headersTimeoutMs: 3000,
      webSockets: { idleTimeoutMs: 60_000, maxMessageBytes: 65536, maxPerHost: 64 },
      trustedProxies: ['10.0.0.0/8', '::1'],
      proxy: { headTimeoutMs: 5000, idleTimeoutMs: 7000, minBodyBytesPerSecond: 0, bodyRateGraceMs: 2000, maxBodyBytes: 1048576 },
      pool: { maxInFlightPerHost: 32, maxInFlightPerVolunteer: 4, failureThreshold: 5, penaltyBaseMs: 500, penaltyMaxMs: 30_000, penaltyDecayMs: 120_000 },
    });
    expect(usageError(['--signal', 'http://s:1', '--trusted-proxy', 'proxy.example.net'])).toMatch(/--trusted-proxy takes an address or CIDR/);
    expect(usageError(['--signal', 'http://s:1', '--max-body', '0'])).toMatch(/--max-body must be a whole number >= 1/);
    expect(usageError(['--signal', 'http://s:1', '--ws-max-message', '0'])).toMatch(/--ws-max-message must be a whole number >= 1/);
  });

  it('read the cache size and entry cap in bytes or with units, 0 turning the cache off', () => {
    expect(ingress(['--signal', 'http://s:1', '--cache-size', '4MiB', '--cache-max-entry', '65536', '--cache-pass-ttl', '0'])).toMatchObject({ cache: { maxBytes: 4 * 1024 * 1024, maxEntryBytes: 65536, passTtlMs: 0 } });
    expect(ingress(['--signal', 'http://s:1', '--cache-size', '0'])).toMatchObject({ cache: { maxBytes: 0 } });
    expect(usageError(['--signal', 'http://s:1', '--cache-size', 'lots'])).toMatch(/--cache-size takes a size/);
  });

  it('read what an ingress on its own machine needs: addresses, STUN, timeouts, base domain, public WebSocket URL', () => {
    const opts = ingress([
      '--signal', 'wss://signal.example.net',
      '--host', '0.0.0.0',
      '--port', '443',
      '--ice-address', '203.0.113.7',
      '--ice-address', '[2001:db8::7]',
      '--ice-address', '203.0.113.7',
      '--stun', 'stun:stun.example.net:3478',
      '--rtc-open-timeout', '2500',
      '--base-domain', 'apps.example.net',
      '--public-ws', 'wss://ingress.example.net/',
      '--shutdown-grace', '0',
      '--token', 'tok',
      '--kv-store', 'none',
    ], {});
    expect(opts).toMatchObject({
      signalUrl: 'wss://signal.example.net/v1/signal',
      host: '0.0.0.0',
      port: 443,
      token: 'tok',
      rtc: { advertisedAddresses: ['203.0.113.7', '2001:db8::7'], iceServers: [{ urls: ['stun:stun.example.net:3478'] }] },
      rtcOpenTimeoutMs: 2500,
      routing: { baseDomain: 'apps.example.net' },
      publicWsBase: 'wss://ingress.example.net',
      shutdownGraceMs: 0,
      kvStore: 'none',
    });
    expect(opts.secret).toBeUndefined();
  });

  it('mint fresh TURN credentials of their own for every connection', () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1), toFake: ['Date'] });
    const { rtc } = ingress(['--signal', 'http://s:1', '--ice-address', '203.0.113.7', '--turn', 'turn:turn.example.net:3478?transport=udp', '--turn-ttl', '600', '--name', 'edge:1'], {
      ...env,
      DCDN_TURN_SECRET: 'coturn-secret',
    });
    const expiry = Date.UTC(2026, 0, 1) / 1000 + 600;
    expect(rtc.iceServers).toEqual([{ urls: ['turn:turn.example.net:3478?transport=udp'], username: `${expiry}:edge-1`, credential: expect.any(String) }]);
    vi.setSystemTime(Date.UTC(2026, 0, 1) + 3600_000);
    // An hour on, a new connection gets credentials valid for another --turn-ttl.
    expect(rtc.iceServers?.[0]?.username).toBe(`${expiry + 3600}:edge-1`);
    // Spread copies (as the connector makes) see the servers too.
    expect({ ...rtc }.iceServers).toHaveLength(1);
  });

  it('--ice-lite ignores signaling’s servers with an empty list of its own', () => {
    expect(ingress(['--signal', 'http://s:1', '--ice-lite', '--ice-address', '203.0.113.7']).rtc).toEqual({ advertisedAddresses: ['203.0.113.7'], iceServers: [] });
    expect(usageError(['--signal', 'http://s:1', '--ice-lite', '--stun', 'stun:127.0.0.1'])).toMatch(/--ice-lite/);
  });

  it('keep a loopback-only ingress to servers it can reach', () => {
    // A loopback STUN server (a test coturn) is fine without --ice-address; so is a name, which
    // may resolve to loopback; a non-loopback address cannot be reached from loopback sockets.
    expect(ingress(['--signal', 'http://s:1', '--stun', 'stun:127.0.0.1:3478']).rtc.iceServers).toEqual([{ urls: ['stun:127.0.0.1:3478'] }]);
    expect(ingress(['--signal', 'http://s:1', '--stun', 'stun:turn.internal:3478']).rtc.iceServers).toEqual([{ urls: ['stun:turn.internal:3478'] }]);
    expect(usageError(['--signal', 'http://s:1', '--stun', 'stun:198.51.100.9:3478'])).toMatch(/stun:198\.51\.100\.9:3478: a loopback-only ingress cannot reach it; add --ice-address/);
    expect(ingress(['--signal', 'http://s:1', '--stun', 'stun:198.51.100.9:3478', '--ice-address', '198.51.100.20']).rtc.iceServers).toHaveLength(1);
  });

  it('turn every bad value into a usage error naming the flag', () => {
    expect(usageError([])).toMatch(/--signal URL is required/);
    expect(usageError(['--signal', 'not a url'])).toMatch(/--signal must be a URL/);
    expect(usageError(['--signal', 'http://s:1', '--ice-address', 'eth0'])).toMatch(/--ice-address must be an IP address/);
    expect(usageError(['--signal', 'http://s:1', '--ice-address', 'ingress.example.net'])).toMatch(/--ice-address/);
    expect(usageError(['--signal', 'http://s:1', '--ice-address', '0.0.0.0'])).toMatch(/--ice-address must be an address hosts can reach, not the wildcard/);
    expect(usageError(['--signal', 'http://s:1', '--ice-address', '::'])).toMatch(/not the wildcard/);
    expect(usageError(['--signal', 'http://s:1', '--rtc-open-timeout', '0'])).toMatch(/--rtc-open-timeout must be a whole number >= 1/);
    expect(usageError(['--signal', 'http://s:1', '--shutdown-grace', 'soon'])).toMatch(/--shutdown-grace/);
    expect(usageError(['--signal', 'http://s:1', '--public-ws', 'http://ingress.example.net'])).toMatch(/--public-ws must be ws:/);
    expect(usageError(['--signal', 'http://s:1', '--base-domain', 'apps example'])).toMatch(/--base-domain/);
    expect(usageError(['--signal', 'http://s:1', '--transport', 'carrier-pigeon'])).toMatch(/--transport must be webrtc or websocket/);
    expect(usageError(['--signal', 'http://s:1', '--rtc', 'libwebrtc'])).toMatch(/--rtc must be werift or node-datachannel/);
    expect(usageError(['--signal', 'http://s:1', '--turn', 'turn:t.example.net'])).toMatch(/--turn needs --turn-secret/);
    expect(usageError(['--signal', 'http://s:1', '--stun', 'http://stun.example.net'])).toMatch(/--stun "http:\/\/stun.example.net" is not a STUN URL/);
    expect(usageError(['--signal', 'http://s:1', '--region', 'eu west'])).toMatch(/--region must be/);
    expect(usageError(['--signal', 'http://s:1', '--weight', '0'])).toMatch(/--weight must be a number over 0/);
    expect(usageError(['--signal', 'http://s:1', '--peer-listen', '10.0.0.5'])).toMatch(/--peer-listen must be ADDRESS:PORT/);
    expect(usageError(['--signal', 'http://s:1', '--peer-listen', '10.0.0.5:8081', '--peer-url', 'ws://10.0.0.5:8081'])).toMatch(/--peer-url must be http/);
    expect(usageError(['--signal', 'http://s:1', '--peer-url', 'http://10.0.0.5:8081'])).toMatch(/--peer-url needs --peer-listen/);
    expect(usageError(['--signal', 'http://s:1', '--detach-grace', 'later'])).toMatch(/--detach-grace/);
  });

  it('read the cluster placement and the peer listener', () => {
    const opts = ingress(['--signal', 'http://s:1', '--name', 'edge-2', '--region', 'eu-west', '--weight', '2.5', '--peer-listen', '10.0.0.5:8081', '--peer-url', 'http://edge-2.internal:8081/', '--detach-grace', '5000']);
    expect(opts).toMatchObject({ name: 'edge-2', region: 'eu-west', weight: 2.5, peerListen: { host: '10.0.0.5', port: 8081 }, peerUrl: 'http://edge-2.internal:8081', detachGraceMs: 5000 });
  });

  it('say plainly which option is unknown', () => {
    expect(() => parseFlags(['--ice-adress', '10.0.0.5'], ingressFlags)).toThrow(new UsageError('unknown option --ice-adress'));
  });
});

describe('dcdn launch flags', () => {
  it('let Chromium resolve the --signal host and each --allow-host', () => {
    const v = parseFlags(['--signal', 'http://vm:40201', '--allow-host', 'ingress.example.net', '--allow-host', 'wss://edge.example.net:8443/ws', '--allow-host', '*.cdn.example'], launchFlags);
    expect(launchAllowHosts('http://vm:40201', v['allow-host'] as string[])).toEqual(['vm', 'ingress.example.net', 'edge.example.net', '*.cdn.example']);
  });

  it('add nothing for loopback, which always resolves', () => {
    expect(launchAllowHosts('http://127.0.0.1:8787')).toEqual([]);
    expect(launchAllowHosts('http://localhost:8787', ['10.0.0.5', '10.0.0.5:8080'])).toEqual(['10.0.0.5']);
  });

  it('refuse a pattern that could rewrite the resolver rules', () => {
    expect(() => launchAllowHosts('http://vm:1', ['a, EXCLUDE *'])).toThrow(UsageError);
    expect(() => launchAllowHosts('http://vm:1', ['a, EXCLUDE *'])).toThrow(/--allow-host/);
  });
});
