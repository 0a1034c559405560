/**
 * Issue 15.5, at the session: a peer that floods one kind of frame is cut off with
 * PROTO_RATE_LIMITED, and one that stops reading while making this side answer is cut off with
 * PROTO_SLOW_PEER instead of being buffered for. Before, a PING flood from a peer that did not
 * read its socket was answered PONG by PONG into an unbounded queue (ingress RSS 280 → 410 MB,
 * visitors' p50 15 → 207 ms).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { concatFrames, encodeFrame } from './codec.ts';
import type { DcdnError } from './errors.ts';
import { FrameBudgets } from './frame-budget.ts';
import { FrameType } from './frames.ts';
import { createMemoryChannelPair, type MemoryChannel } from './memory-channel.ts';
import { Session, type SessionOptions } from './session.ts';

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function pair(opts: Partial<SessionOptions> = {}) {
  const [a, b] = createMemoryChannelPair({ maxMessageSize: 64 * 1024 });
  const ingress = new Session(a, { role: 'client', ...opts });
  const host = new Session(b, { role: 'server' });
  open.push(ingress, host);
  await Promise.all([ingress.ready, host.ready]);
  const closed = new Promise<DcdnError>((resolve) => (ingress.onclose = resolve));
  return { ingress, a: a as MemoryChannel, b: b as MemoryChannel, closed };
}

/** `n` PING frames in one message, as a hostile host writes them on its channel. */
const pings = (n: number, from = 0) => concatFrames(Array.from({ length: n }, (_, i) => encodeFrame({ type: FrameType.PING, stream: 0, nonce: from + i })));

describe('frame budgets', () => {
  it('close the session with PROTO_RATE_LIMITED when a peer floods PINGs', async () => {
    const { b, closed } = await pair({ frameBudgets: { ping: { perSecond: 10, burst: 20 } } });
    b.send(pings(100));
    const err = await closed;
    expect(err.code).toBe('PROTO_RATE_LIMITED');
    expect(err.message).toMatch(/ping/);
  });

  it('leave a peer within its budgets alone', async () => {
    const { ingress, b } = await pair({ frameBudgets: { ping: { perSecond: 10, burst: 20 } } });
    b.send(pings(15));
    // Heartbeats both ways still work: the session is open after a round trip.
    await ingress.ping();
    expect(ingress.isClosed).toBe(false);
  });

  it('refill with time', () => {
    let now = 0;
    const budgets = new FrameBudgets({ reset: { perSecond: 2, burst: 2 } }, () => now);
    expect([budgets.take('reset'), budgets.take('reset'), budgets.take('reset')]).toEqual([true, true, false]);
    now += 500;
    expect(budgets.take('reset')).toBe(true);
    expect(budgets.take('reset')).toBe(false);
  });
});

describe('a peer that does not read', () => {
  it('is cut off with PROTO_SLOW_PEER once more than maxOutboundBytes are queued for it', async () => {
    // A generous PING budget, so the outbound bound is what stops it.
    const { a, b, closed } = await pair({ frameBudgets: { ping: { perSecond: 1e6, burst: 1e6 } }, maxOutboundBytes: 8 * 1024 });
    a.pause(); // the ingress's messages to the host pile up unread
    for (let i = 0; i < 20; i++) b.send(pings(200, i * 200));
    const err = await closed;
    expect(err.code).toBe('PROTO_SLOW_PEER');
    expect(a.bufferedAmount).toBeLessThan(64 * 1024);
  });
});
