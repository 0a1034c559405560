import { afterEach, describe, expect, it, vi } from 'vitest';
import { streamBody } from './body.ts';
import { createMemoryChannelPair } from './memory-channel.ts';
import { Session } from './session.ts';
import type { Stream } from './stream.ts';

const open: Session[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) s.close();
  if (vi.isFakeTimers()) {
    // Run what is still due on the fake clock (turn.ts's batch, closes) so no module-level
    // queue is left waiting on a fake timer that will never fire once real timers are back.
    await vi.runOnlyPendingTimersAsync();
    vi.useRealTimers();
  }
});

async function pair(receiveWindow = 64 * 1024) {
  const [a, b] = createMemoryChannelPair({ maxMessageSize: 16 * 1024 });
  const ingress = new Session(a, { role: 'client', receiveWindow });
  const host = new Session(b, { role: 'server', receiveWindow });
  open.push(ingress, host);
  await Promise.all([ingress.ready, host.ready]);
  return { ingress, host };
}

/**
 * A pair on fake timers: the memory channel delivers one message per (fake) macrotask, so
 * `settle()` delivers everything due whatever the machine's load, and "no more arrived" means it.
 */
async function fakePair(receiveWindow = 64 * 1024) {
  vi.useFakeTimers();
  const paired = pair(receiveWindow);
  await settle();
  return paired;
}

/** Runs the fake clock forward, with every timer and delivery due by then. */
async function settle(ms = 50): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** Runs the fake clock until `work` is done. */
async function settleUntil<T>(work: Promise<T>): Promise<T> {
  let done = false;
  const watched = work.finally(() => (done = true));
  while (!done) await settle(10);
  return watched;
}

describe('streams a host opens (KV operations)', () => {
  it('carry a body up and an answer down, with ids of the host parity', async () => {
    const { ingress, host } = await pair();
    const seen: Array<{ id: number; app: string | undefined; body: number }> = [];
    ingress.onstream = (stream: Stream) => {
      void (async () => {
        let n = 0;
        for await (const chunk of streamBody(stream)) n += chunk.byteLength;
        seen.push({ id: stream.id, app: stream.request.app, body: n });
        stream.respond({ status: 204, headers: [] }, true);
      })();
    };
    const s = host.open({ method: 'PUT', url: '/kv/CACHE/a', headers: [], app: 'hello' }, false);
    const answered = new Promise<number>((resolve) => (s.onhead = (h) => resolve(h.status)));
    const value = new Uint8Array(300 * 1024).fill(7);
    await s.write(value);
    s.end();
    expect(await answered).toBe(204);
    expect(seen).toEqual([{ id: 2, app: 'hello', body: value.byteLength }]);
  });

  it('hold no more than a window when the reader is slow, and hand credit back as it reads', async () => {
    const window = 64 * 1024;
    const { ingress, host } = await fakePair(window);
    let reader: AsyncIterableIterator<Uint8Array> | null = null;
    let arrived = 0;
    ingress.onstream = (stream) => {
      reader = streamBody(stream);
      const ondata = stream.ondata!;
      stream.ondata = (c) => {
        arrived += c.byteLength;
        ondata(c);
      };
    };
    const s = host.open({ method: 'PUT', url: '/kv/CACHE/a', headers: [], app: 'hello' }, false);
    const total = 1024 * 1024;
    const writing = s.write(new Uint8Array(total)).then(() => s.end());
    await settle(100);
    // The positive sign first: a whole window arrived, and no more did.
    expect(arrived).toBe(window);
    const reading = (async () => {
      let read = 0;
      for await (const chunk of reader!) read += chunk.byteLength;
      return read;
    })();
    expect(await settleUntil(reading)).toBe(total);
    await writing;
  });

  it('throw the code of a reset', async () => {
    const { ingress, host } = await pair();
    let firstChunk!: () => void;
    const reading = new Promise<void>((resolve) => (firstChunk = resolve));
    const failure = new Promise<unknown>((resolve) => {
      ingress.onstream = (stream) => {
        void (async () => {
          try {
            for await (const _ of streamBody(stream)) firstChunk();
          } catch (err) {
            resolve(err);
          }
        })();
      };
    });
    const s = host.open({ method: 'PUT', url: '/kv/CACHE/a', headers: [], app: 'hello' }, false);
    await s.write(new Uint8Array(10));
    // Reset once the other side is reading the body, so it is the reader that sees it.
    await reading;
    s.reset('PROTO_CANCELLED', 'the app stream failed');
    expect(await failure).toMatchObject({ code: 'PROTO_CANCELLED' });
  });

  it('are dropped when reset in the same turn as they were opened', async () => {
    const { ingress, host } = await pair();
    const opened: number[] = [];
    const laterArrived = new Promise<void>((resolve) => {
      ingress.onstream = (stream) => {
        opened.push(stream.id);
        if (stream.id === later.id) resolve();
      };
    });
    const s = host.open({ method: 'GET', url: '/kv/CACHE/a', headers: [], app: 'hello' }, true);
    s.reset('PROTO_CANCELLED', 'changed my mind');
    const later = host.open({ method: 'GET', url: '/kv/CACHE/b', headers: [], app: 'hello' }, true);
    // Frames arrive in order: once the later stream is there, the dropped one would have been too.
    await laterArrived;
    expect(opened).toEqual([later.id]);
  });

  it('count against maxIncomingStreams apart from the streams this side opened', async () => {
    const [a, b] = createMemoryChannelPair({ maxMessageSize: 16 * 1024 });
    const ingress = new Session(a, { role: 'client', maxIncomingStreams: 1 });
    const host = new Session(b, { role: 'server' });
    open.push(ingress, host);
    await Promise.all([ingress.ready, host.ready]);
    host.onstream = () => {}; // requests stay open
    for (let i = 0; i < 3; i++) ingress.open({ method: 'GET', url: '/', headers: [] }, true);
    const accepted: number[] = [];
    ingress.onstream = (stream) => void accepted.push(stream.id);
    const first = host.open({ method: 'GET', url: '/kv/CACHE/a', headers: [], app: 'hello' }, true);
    const second = host.open({ method: 'GET', url: '/kv/CACHE/b', headers: [], app: 'hello' }, true);
    const refused = await new Promise((resolve) => (second.onreset = resolve));
    expect(accepted).toEqual([first.id]);
    expect(refused).toMatchObject({ code: 'PROTO_TOO_MANY_STREAMS' });
  });

  it('are refused when the ingress takes none', async () => {
    const { host } = await pair();
    const s = host.open({ method: 'GET', url: '/kv/CACHE/a', headers: [], app: 'hello' }, true);
    const err = await new Promise((resolve) => (s.onreset = resolve));
    expect(err).toMatchObject({ code: 'PROTO_TOO_MANY_STREAMS' });
  });
});
