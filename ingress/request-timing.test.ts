import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryChannelPair, Session, WATERFALL_SEGMENTS, type HostTimes } from '../protocol/index.ts';
import { clockOffsetOf, ingressNow, RequestTiming } from './request-timing.ts';

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function pair(version?: number) {
  const [a, b] = createMemoryChannelPair();
  const ingress = new Session(a, { role: 'client' });
  const host = new Session(b, { role: 'server' });
  open.push(ingress, host);
  await Promise.all([ingress.ready, host.ready]);
  if (version !== undefined) (ingress as { version: number }).version = version;
  return { ingress, host };
}

/** A host whose clock reads `skewMs` ahead of the ingress's, answering every asked stream with its stamps. */
function answerWithTimes(host: Session, skewMs: number): void {
  host.onstream = (stream) => {
    const received = ingressNow() + skewMs;
    queueMicrotask(() => {
      const at = ingressNow() + skewMs;
      const times: HostTimes = { received, toSandbox: at, handlerStart: at, handlerHead: at, headInPage: at, sent: at };
      host.sendTiming(stream, times);
      stream.respond({ status: 200, headers: [] }, true);
    });
  };
}

const finished = { writableLength: 0 } as ServerResponse;

describe('RequestTiming', () => {
  it('turns both sides’ stamps into segments on the ingress clock, whatever the host clock reads', async () => {
    const { ingress, host } = await pair();
    answerWithTimes(host, 3_600_000); // an hour ahead
    const timing = new RequestTiming();
    const stream = ingress.open({ method: 'GET', url: '/', headers: [] }, true);
    timing.opened(ingress, stream);
    await new Promise<void>((resolve) => {
      stream.onhead = () => {
        timing.head();
        resolve();
      };
    });
    timing.ended(finished);
    const w = timing.result();
    expect(w).not.toBeNull();
    expect(Object.keys(w!)).toEqual([...WATERFALL_SEGMENTS]);
    // The hour is the offset, not a segment: every segment is small and the one-way times add up.
    for (const s of WATERFALL_SEGMENTS) expect(Math.abs(w![s])).toBeLessThan(1_000_000);
    expect(w!.toPage + w!.toIngress).toBeGreaterThanOrEqual(0);
    expect(clockOffsetOf(ingress)!.offsetMs).toBeCloseTo(3_600_000, -2);
  });

  it('gives no waterfall when the host runs a version without timing frames (nothing is asked)', async () => {
    const { ingress, host } = await pair(2);
    let asked = false;
    host.onstream = (stream) => {
      queueMicrotask(() => {
        asked = stream.timingAsked;
        stream.respond({ status: 204, headers: [] }, true);
      });
    };
    const timing = new RequestTiming();
    const stream = ingress.open({ method: 'GET', url: '/', headers: [] }, true);
    timing.opened(ingress, stream);
    await new Promise<void>((resolve) => (stream.onhead = () => resolve()));
    timing.head();
    timing.ended(finished);
    expect(asked).toBe(false);
    expect(timing.result()).toBeNull();
  });
});
