import { describe, expect, it } from 'vitest';
import { formatBytes, RateMeter, statusText, type HostSnapshot, unservableApps } from './join-status.ts';

const NBSP = '\u00a0';

describe('RateMeter', () => {
  it('gives requests and bytes per second from the counters of the last samples', () => {
    const meter = new RateMeter(2);
    meter.add(0, 0, 0);
    expect(meter.rate).toEqual({ requestsPerSecond: 0, bytesPerSecond: 0 });
    meter.add(1000, 10, 2048);
    meter.add(2000, 30, 4096);
    expect(meter.rate).toEqual({ requestsPerSecond: 15, bytesPerSecond: 2048 });
    meter.add(3000, 30, 4096); // the first sample leaves the window
    expect(meter.rate).toEqual({ requestsPerSecond: 10, bytesPerSecond: 1024 });
    meter.reset();
    expect(meter.rate).toEqual({ requestsPerSecond: 0, bytesPerSecond: 0 });
  });
});

describe('statusText', () => {
  const snapshot: HostSnapshot = {
    name: 'volunteer-ada',
    hostId: '0123456789abcdef',
    signalingConnected: true,
    connections: [{ ingress: 'a3abf029-3977-4a6e-b4a0-039e671ae899', transport: 'webrtc', rttMs: 3.6 }],
    apps: [
      { app: 'default', version: 2, loading: false, error: null },
      { app: 'shop', version: null, loading: true, error: null },
    ],
    stats: { requests: 5, inFlight: 1, errors: 1, bytesIn: 100, bytesOut: 3 * 1024 * 1024 },
  };

  it('describes a serving host in plain words, a number never apart from its unit', () => {
    expect(statusText(snapshot, { requestsPerSecond: 2.5, bytesPerSecond: 1536 }, true)).toEqual({
      connection: 'Connected to signaling',
      ingresses: [`ingress a3abf029 · webrtc · RTT${NBSP}4${NBSP}ms`],
      apps: ['default v2', 'shop (loading)'],
      requests: '5 served · 1 in flight · 1 error',
      traffic: `100${NBSP}B in · 3.0${NBSP}MiB out`,
      rate: `2.5${NBSP}req/s · 1.5${NBSP}KiB/s`,
      host: `volunteer-ada (id${NBSP}01234567)`,
    });
  });

  it('says not joined before the first Join and after Leave', () => {
    expect(statusText(null, { requestsPerSecond: 0, bytesPerSecond: 0 }, false).connection).toBe('Not joined');
    expect(statusText(snapshot, { requestsPerSecond: 0, bytesPerSecond: 0 }, false).connection).toBe('Not joined');
  });
});

describe('formatBytes', () => {
  it('uses binary units with one decimal', () => {
    expect([0, 1023, 1024, 1536, 5 * 1024 ** 3].map(formatBytes)).toEqual([`0${NBSP}B`, `1023${NBSP}B`, `1.0${NBSP}KiB`, `1.5${NBSP}KiB`, `5.0${NBSP}GiB`]);
  });
});

describe('unservableApps', () => {
  it('names the invite\'s apps that signaling did not offer, once it has said', () => {
    expect(unservableApps(['volunteer', 'app:hello'], null)).toEqual([]);
    expect(unservableApps(['volunteer', 'app:hello'], [])).toEqual(['Cannot serve hello: the operator has not deployed it for volunteers (--volunteers).']);
    expect(unservableApps(['volunteer', 'app:hello', 'app:open'], ['open'])).toHaveLength(1);
    expect(unservableApps(['volunteer', 'app:open'], ['open'])).toEqual([]);
  });

  it('says when an invite for every app finds none open to volunteers', () => {
    expect(unservableApps(['volunteer'], [])).toEqual(['No app on this network is open to volunteers yet: there is nothing to serve.']);
    expect(unservableApps(['volunteer'], ['default'])).toEqual([]);
  });
});
