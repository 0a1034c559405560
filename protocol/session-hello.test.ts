import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryChannelPair } from './memory-channel.ts';
import { Session } from './session.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('a session whose peer never says HELLO', () => {
  it('closes with PROTO_HELLO_TIMEOUT, not PROTO_VERSION, once the hello timeout passes', async () => {
    // Only the timers the session's deadlines use are faked: its flushes ride on setImmediate.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const [a, b] = createMemoryChannelPair();
    b.onmessage = () => {}; // a peer that reads and never answers
    const session = new Session(a, { role: 'client', helloTimeoutMs: 5000, heartbeatIntervalMs: 60_000, heartbeatTimeoutMs: 120_000 });
    let closedWith: string | null = null;
    session.onclose = (err) => (closedWith = err.code);
    const ready = session.ready.then(
      () => 'ready',
      (err: { code?: string; message?: string }) => err,
    );
    vi.advanceTimersByTime(4999);
    await Promise.resolve();
    expect(closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect(await ready).toMatchObject({ code: 'PROTO_HELLO_TIMEOUT', message: 'no HELLO within 5000 ms' });
    expect(closedWith).toBe('PROTO_HELLO_TIMEOUT');
  });
});
