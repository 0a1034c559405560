import { afterEach, describe, expect, it } from 'vitest';
import { ClockOffset, sampleOffset } from './clock-offset.ts';
import { encodeFrame } from './codec.ts';
import { FrameType, type HostTimes } from './frames.ts';
import { createMemoryChannelPair } from './memory-channel.ts';
import { Session } from './session.ts';
import type { Stream } from './stream.ts';
import { waterfallOf, WATERFALL_SEGMENTS } from './waterfall.ts';

/**
 * A fake exchange between two clocks: the host's clock reads `offset` ms ahead of the
 * ingress's; the request takes `up` ms to the host, `work` there, `down` ms back.
 */
function exchange(at: number, offset: number, up: number, work: number, down: number) {
  const t0 = at;
  const t1 = t0 + up + offset;
  const t2 = t1 + work;
  const t3 = t0 + up + work + down;
  return { t0, t1, t2, t3 };
}

describe('clock offset (NTP-style, from timed requests)', () => {
  it('is exact when both directions take as long', () => {
    const s = sampleOffset(exchange(1000, 5_000_000.25, 0.2, 0.5, 0.2));
    expect(s.offsetMs).toBeCloseTo(5_000_000.25, 6);
    expect(s.delayMs).toBeCloseTo(0.4, 9);
  });

  it('errs by half the asymmetry, never more than half the delay', () => {
    const s = sampleOffset(exchange(1000, -300, 0.9, 0.5, 0.1));
    expect(s.offsetMs).toBeCloseTo(-300 + 0.4, 9);
    expect(Math.abs(s.offsetMs - -300)).toBeLessThanOrEqual(s.delayMs / 2);
  });

  it('keeps the least-delay sample of its window, so one queued exchange does not move it', () => {
    const clock = new ClockOffset(4);
    clock.add(exchange(0, 100, 0.1, 0.3, 0.1)); // clean
    clock.add(exchange(10, 100, 3, 0.3, 0.1)); // queued on the way out: offset off by 1.45 ms
    expect(clock.offsetMs).toBeCloseTo(100, 9);
    expect(clock.delayMs).toBeCloseTo(0.2, 9);
    expect(clock.samples).toBe(2);
  });

  it('forgets samples past its window, so the estimate follows a clock that moved', () => {
    const clock = new ClockOffset(2);
    clock.add(exchange(0, 100, 0.1, 0.3, 0.1));
    clock.add(exchange(10, 150, 0.2, 0.3, 0.2));
    clock.add(exchange(20, 150, 0.2, 0.3, 0.2));
    expect(clock.offsetMs).toBeCloseTo(150, 9);
  });

  it('ignores an exchange with a negative delay (a clock stepped between stamps)', () => {
    const clock = new ClockOffset();
    clock.add({ t0: 10, t1: 0, t2: 100, t3: 11 });
    expect(clock.offsetMs).toBeUndefined();
  });
});

describe('waterfall', () => {
  const ingress = { accepted: 1000, framed: 1000.05, sent: 1000.1, headReceived: 1001.1, lastByte: 1001.2 };
  // Host clock 2 s ahead; 0.15 ms each way on the channel.
  const host: HostTimes = { received: 3000.25, toSandbox: 3000.3, handlerStart: 3000.5, handlerHead: 3000.6, headInPage: 3000.8, sent: 3000.95 };

  it('splits the request into segments in order that add up to the whole', () => {
    const w = waterfallOf(ingress, host, 2000);
    expect(Object.keys(w)).toEqual([...WATERFALL_SEGMENTS]);
    expect(w).toEqual({ ingressIn: 50, ingressQueue: 50, toPage: 150, pageToSandbox: 50, sandboxToHandler: 200, handler: 100, handlerToPage: 200, pageOut: 150, toIngress: 150, ingressOut: 100 });
    const sum = WATERFALL_SEGMENTS.reduce((n, s) => n + w[s], 0);
    expect(sum).toBeCloseTo((ingress.lastByte - ingress.accepted) * 1000, 6);
  });

  it('gives a hop the host does not know (0) no time: it lands in the next segment', () => {
    const w = waterfallOf(ingress, { ...host, handlerStart: 0, handlerHead: 0 }, 2000);
    expect(w.sandboxToHandler).toBe(0);
    expect(w.handler).toBe(0);
    expect(w.handlerToPage).toBe(500);
  });
});

describe('timing frames on a session', () => {
  const open: Session[] = [];
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  async function pair() {
    const [a, b] = createMemoryChannelPair();
    const client = new Session(a, { role: 'client' });
    const server = new Session(b, { role: 'server' });
    open.push(client, server);
    await Promise.all([client.ready, server.ready]);
    return { client, server, a, b };
  }

  it('carries an ask with the head and the host times back before the head', async () => {
    const { client, server } = await pair();
    const times: HostTimes = { received: 1.25, toSandbox: 2, handlerStart: 3, handlerHead: 4, headInPage: 5, sent: 6.5 };
    const served = new Promise<Stream>((resolve) => {
      server.onstream = (stream) => {
        // The ask follows the head in the same message: known by the end of this turn.
        queueMicrotask(() => {
          server.sendTiming(stream, times);
          stream.respond({ status: 200, headers: [] }, true);
          resolve(stream);
        });
      };
    });
    const stream = client.open({ method: 'GET', url: '/', headers: [] }, true);
    expect(client.askTiming(stream)).toBe(true);
    const sent = new Promise<void>((resolve) => client.whenSent(resolve));
    const order: string[] = [];
    const got = new Promise<HostTimes>((resolve) => {
      stream.ontiming = (t) => {
        order.push('timing');
        resolve(t);
      };
      stream.onhead = () => order.push('head');
    });
    await sent;
    expect((await served).timingAsked).toBe(true);
    expect(await got).toMatchObject(times);
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['timing', 'head']);
  });

  it('sends no timing for a stream nobody asked about', async () => {
    const { client, server } = await pair();
    server.onstream = (stream) => {
      server.sendTiming(stream, { received: 1, toSandbox: 1, handlerStart: 1, handlerHead: 1, headInPage: 1, sent: 1 });
      stream.respond({ status: 204, headers: [] }, true);
    };
    const stream = client.open({ method: 'GET', url: '/', headers: [] }, true);
    let timed = false;
    stream.ontiming = () => (timed = true);
    await new Promise<void>((resolve) => (stream.onhead = () => resolve()));
    expect(timed).toBe(false);
    expect(server.stats.framesOut).toBe(client.stats.framesIn);
  });

  it('drops a TIMING sent to the side that accepted the stream (wrong direction), and carries on', async () => {
    const { client, server, a } = await pair();
    let stream: Stream | undefined;
    server.onstream = (s) => (stream = s);
    const mine = client.open({ method: 'GET', url: '/', headers: [] }, true);
    await new Promise((r) => setTimeout(r, 10));
    const before = server.stats.unknownStreamFrames;
    a.send(encodeFrame({ type: FrameType.TIMING, stream: mine.id, received: 1, toSandbox: 1, handlerStart: 1, handlerHead: 1, headInPage: 1, sent: 1 }));
    await new Promise((r) => setTimeout(r, 10));
    expect(server.stats.unknownStreamFrames).toBe(before + 1);
    expect(stream?.timingAsked).toBe(false);
    expect(server.isOpen).toBe(true);
  });
});
