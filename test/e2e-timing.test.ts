/**
 * Request timing end to end in real Chromium over werift (docs/performance.md, "Waterfall"): a
 * `dcdn tail` subscriber that asks for timing (`?timing=1`) gets, with every request, the
 * segments from the ingress accepting it through the page, the sandbox worker and back to the
 * last byte; they are plausible (the ones on one clock never negative, the one-way channel
 * times adding up to a non-negative round trip) and add up to the request. A subscriber that
 * does not ask gets no timing, and the Prometheus histogram counts the timed requests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Ingress } from '../ingress/index.ts';
import { WATERFALL_SEGMENTS, type Waterfall } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';
import { disconnectBrowser } from './browser.ts';
import { startNetwork, until, type Network } from './network.ts';

type Event = Record<string, unknown>;

let net: Network;
let ingress: Ingress;
let operator: string;

beforeAll(async () => {
  net = await startNetwork();
  operator = mintToken(net.secret, { role: 'operator', sub: 'e2e-timing', ttlSeconds: 600 });
  ingress = await net.addIngress({ authorizeOperator: (t) => t === operator });
  await net.addTab('timing-a');
  await until(() => ingress.pool.size === 1, 20_000, 'one host');
}, 60_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
});

/** A tail subscriber collecting request events until `count` have come. */
async function tail(query: string, count: number): Promise<{ events: Promise<Event[]>; close(): void }> {
  const ws = new WebSocket(`${ingress.url.replace(/^http/, 'ws')}/_dcdn/tail${query}`, { headers: { authorization: `Bearer ${operator}` } });
  const got: Event[] = [];
  let hello!: () => void;
  const ready = new Promise<void>((r) => (hello = r));
  const events = new Promise<Event[]>((resolve) => {
    ws.on('message', (d) => {
      const e = JSON.parse(String(d)) as Event;
      if (e.type === 'hello') hello();
      if (e.type === 'request') got.push(e);
      if (got.length === count) resolve(got);
    });
  });
  await ready;
  return { events, close: () => ws.close() };
}

describe('request timing', () => {
  it('gives each request a waterfall whose segments are plausible and add up to the request', async () => {
    const n = 12;
    const t = await tail('?timing=1', n);
    try {
      for (let i = 0; i < n; i++) {
        const res = await fetch(`${ingress.url}/?i=${i}`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
      const events = await t.events;
      for (const e of events) {
        expect(e.transport).toBe('webrtc');
        const w = e.timing as Waterfall;
        expect(Object.keys(w)).toEqual([...WATERFALL_SEGMENTS]);
        // On the ingress's clock alone: never negative.
        for (const s of ['ingressIn', 'ingressQueue', 'ingressOut'] as const) expect(w[s]).toBeGreaterThanOrEqual(0);
        // Stamps of one realm are monotone: the page's own segments and the handler's (both
        // ends in the worker) never go below 0 (beyond float rounding). The two hops between
        // page and worker cross realms and processes, whose time bases may differ a little, but
        // that cancels in their sum: posted to the head back in the page, all on the page's clock.
        for (const s of ['pageToSandbox', 'pageOut', 'handler'] as const) expect(w[s]).toBeGreaterThan(-1);
        expect(w.sandboxToHandler + w.handler + w.handlerToPage).toBeGreaterThanOrEqual(0);
        // Across clocks: the two one-way times are a round trip, whatever the offset's error.
        expect(w.toPage + w.toIngress).toBeGreaterThanOrEqual(0);
        for (const s of WATERFALL_SEGMENTS) expect(Math.abs(w[s])).toBeLessThan(10_000_000);
        const total = WATERFALL_SEGMENTS.reduce((sum, s) => sum + w[s], 0);
        expect(total).toBeGreaterThan(0);
        // The event's `ms` is the whole request rounded, measured from the same accept to close.
        expect(total / 1000).toBeLessThanOrEqual((e.ms as number) + 1);
      }
    } finally {
      t.close();
    }
  }, 60_000);

  it('times nothing for a subscriber that did not ask, and counts timed requests in the segment histogram', async () => {
    const t = await tail('', 1);
    try {
      await (await fetch(`${ingress.url}/`)).arrayBuffer();
      const [e] = await t.events;
      expect(e).not.toHaveProperty('timing');
    } finally {
      t.close();
    }
    const text = (await ingress.metrics!.render()).body;
    const count = /dcdn_request_segment_seconds_count\{segment="handler",transport="webrtc"\} (\d+)/.exec(text);
    expect(Number(count?.[1])).toBeGreaterThanOrEqual(12);
  });
});
