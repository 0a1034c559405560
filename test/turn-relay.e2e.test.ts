/**
 * NAT traversal through a real TURN relay: coturn on loopback with TURN REST credentials
 * (`use-auth-secret`), signaling configured with its URL and secret, an ingress on werift and a
 * headless Chromium tab forced to relay (`relay=1`). Everything stays on 127.0.0.1.
 */
import type { Page } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CandidateSummary } from '../browser-host/host-agent.ts';
import type { IngressOptions } from '../ingress/index.ts';
import type { IceConfig } from '../signaling/index.ts';
import { disconnectBrowser } from './browser.ts';
import { startCoturn, type Coturn } from './coturn.ts';
import { startNetwork, until, type Network } from './network.ts';

const TURN_SECRET = 'turn-e2e-static-auth-secret';
const TTL_SECONDS = 600;
/** Joining the pool: signaling, the offer, TURN allocations, ICE, DTLS, SCTP and the warm-up pings. */
const POOL_TIMEOUT_MS = 15_000;
/** The refusal tests' ingress gives up on the data channel this soon and falls back to WebSocket. */
const RTC_OPEN_TIMEOUT_MS = 2_500;
/** How long coturn may take to write a line we wait for. */
const LOG_TIMEOUT_MS = 5_000;

let coturn: Coturn;
let net: Network | null = null;

beforeAll(async () => {
  coturn = await startCoturn(TURN_SECRET);
}, 20_000);

afterEach(async () => {
  await net?.close();
  net = null;
});

afterAll(async () => {
  await coturn?.stop();
  await disconnectBrowser();
});

interface Started {
  net: Network;
  tab: Page;
  logs: Array<{ msg: string; fields?: Record<string, unknown> }>;
  /** The tab's and the ingress's signaling ids: their TURN usernames are `<expiry>:<id>`. */
  tabPeerId: string;
  ingressPeerId: string;
  ingressUrl: string;
}

/**
 * A network whose signaling hands out `ice`, with one ingress and one relay-only tab. `ingress`
 * options go to the ingress (e.g. its own `rtc.iceServers`, or a short `rtcOpenTimeoutMs`).
 */
async function startRelayNetwork(ice: IceConfig, ingressOptions: Partial<IngressOptions> = {}): Promise<Started> {
  net = await startNetwork({ ice });
  const logs: Started['logs'] = [];
  const ingress = await net.addIngress({
    transport: 'webrtc',
    ...ingressOptions,
    log: (_level, msg, fields) => logs.push(fields ? { msg, fields } : { msg }),
  });
  const tab = await net.addTab('relay-tab', 'relay=1');
  await until(() => ingress.pool.size === 1, POOL_TIMEOUT_MS, 'the relay-only tab in the pool');
  const peerId = (role: 'host' | 'ingress') => net?.signal.peers().find((p) => p.role === role)?.id ?? '';
  return { net, tab, logs, tabPeerId: peerId('host'), ingressPeerId: peerId('ingress'), ingressUrl: ingress.url };
}

/** coturn's log line for a request by the peer `id` (username `<expiry>:<id>`). */
function userLine(id: string, outcome: string): RegExp {
  return new RegExp(`user <(\\d+):${id.replace(/[^0-9a-f-]/g, '')}>: incoming packet ${outcome}`);
}

function selectedPairs(tab: Page): Promise<Array<{ ingress: string; local: CandidateSummary; remote: CandidateSummary }>> {
  return tab.evaluate(() => {
    const host = (window as unknown as { __dcdnHost: { agent: { selectedCandidatePairs(): Promise<Array<{ ingress: string; local: CandidateSummary; remote: CandidateSummary }>> } } }).__dcdnHost;
    return host.agent.selectedCandidatePairs();
  });
}

describe('a tab forced to relay, with TURN credentials from signaling', () => {
  it('serves a request over webrtc through the coturn relay', async () => {
    const started = Date.now();
    const s = await startRelayNetwork({ turn: [coturn.url], turnSecret: TURN_SECRET, turnTtlSeconds: TTL_SECONDS });
    const joinedMs = Date.now() - started;

    const res = await fetch(`${s.ingressUrl}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Hello from a browser tab');
    expect(res.headers.get('dcdn-transport')).toBe('webrtc');
    expect(res.headers.get('dcdn-host')).toBe('relay-tab');

    // The tab's selected candidate pair starts at a relayed address of our coturn: the data
    // really goes through the relay (a direct path would show a host or prflx candidate).
    const pairs = await selectedPairs(s.tab);
    expect(pairs).toHaveLength(1);
    expect(pairs[0]?.local).toMatchObject({ type: 'relay', address: '127.0.0.1', protocol: 'udp' });

    // coturn allocated relays for the tab's and the ingress's own credentials, each
    // `<expiry>:<that peer's signaling id>`, expiring TTL_SECONDS from now.
    for (const id of [s.tabPeerId, s.ingressPeerId]) {
      const allocated = await coturn.waitForLog(userLine(id, 'ALLOCATE processed, success'), LOG_TIMEOUT_MS);
      const secondsLeft = Number(/<(\d+):/.exec(allocated)?.[1]) - Date.now() / 1000;
      expect(secondsLeft).toBeGreaterThan(TTL_SECONDS - 60);
      expect(secondsLeft).toBeLessThanOrEqual(TTL_SECONDS);
    }
    // The ingress took its servers from signaling: it was given none of its own.
    const joined = s.logs.find((l) => l.msg === 'joined signaling');
    expect(String(joined?.fields?.iceServers)).toBe(`${coturn.url} (from signaling)`);
    const setupMs = s.logs.find((l) => l.msg === 'data channel open')?.fields?.setupMs;
    console.info(`[turn e2e] relay: network up and tab pooled in ${joinedMs} ms (offer to open ${String(setupMs)} ms); tab pair ${JSON.stringify(pairs[0]?.local)} -> ${JSON.stringify(pairs[0]?.remote)}`);
  });
});

describe('credentials coturn refuses', () => {
  it('with a wrong secret, the ingress cannot gather its relay candidate, sends no offer and falls back to WebSocket', async () => {
    const s = await startRelayNetwork({ turn: [coturn.url], turnSecret: 'not-the-coturn-secret', turnTtlSeconds: TTL_SECONDS }, { rtcOpenTimeoutMs: RTC_OPEN_TIMEOUT_MS });
    await coturn.waitForLog(userLine(s.ingressPeerId, 'message processed, error 401: Unauthorized'), LOG_TIMEOUT_MS);
    // werift waits for its TURN allocation before it makes the offer, so the tab never even tried.
    expect(coturn.log()).not.toMatch(userLine(s.tabPeerId, ''));
    const fallback = s.logs.find((l) => l.msg === 'data channel did not open in time; falling back to WebSocket');
    expect(String(fallback?.fields?.stage)).toMatch(/^gathering candidates/);

    const res = await fetch(`${s.ingressUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('dcdn-transport')).toBe('websocket');
  });

  it('when expired, the relay-only tab gets no relay candidate, WebRTC never connects and the ingress falls back to WebSocket', async () => {
    // Minted twice their lifetime ago, so they expired TTL_SECONDS ago. The ingress runs
    // ICE-lite on its own empty list, so the offer goes out and only the tab uses TURN.
    const ice = { turn: [coturn.url], turnSecret: TURN_SECRET, turnTtlSeconds: TTL_SECONDS, now: () => Date.now() - 2 * TTL_SECONDS * 1000 };
    const s = await startRelayNetwork(ice, { rtcOpenTimeoutMs: RTC_OPEN_TIMEOUT_MS, rtc: { iceServers: [] } });
    const refused = await coturn.waitForLog(userLine(s.tabPeerId, 'message processed, error 401: Unauthorized'), LOG_TIMEOUT_MS);
    expect(Number(/<(\d+):/.exec(refused)?.[1])).toBeLessThan(Date.now() / 1000 - TTL_SECONDS + 60);
    expect(coturn.log()).not.toMatch(userLine(s.tabPeerId, 'ALLOCATE processed, success'));
    const fallback = s.logs.find((l) => l.msg === 'data channel did not open in time; falling back to WebSocket');
    expect(String(fallback?.fields?.stage)).toBe('connecting after the offer');

    const res = await fetch(`${s.ingressUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('dcdn-transport')).toBe('websocket');
  });
});
