import { afterEach, describe, expect, it } from 'vitest';
import { streamBody } from './body.ts';
import { createMemoryChannelPair } from './memory-channel.ts';
import { Session } from './session.ts';
import type { Stream } from './stream.ts';

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function pair(receiveWindow = 64 * 1024) {
  const [a, b] = createMemoryChannelPair({ maxMessageSize: 16 * 1024 });
  const ingress = new Session(a, { role: 'client', receiveWindow });
  const host = new Session(b, { role: 'server', receiveWindow });
  open.push(ingress, host);
  await Promise.all([ingress.ready, host.ready]);
  return { ingress, host };
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
    const { ingress, host } = await pair(window);
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
    await new Promise((r) => setTimeout(r, 100));
    expect(arrived).toBeLessThanOrEqual(window);
    let read = 0;
    for await (const chunk of reader!) read += chunk.byteLength;
    await writing;
    expect(read).toBe(total);
  });

  it('throw the code of a reset', async () => {
    const { ingress, host } = await pair();
    const failure = new Promise<unknown>((resolve) => {
      ingress.onstream = (stream) => {
        void (async () => {
          try {
            for await (const _ of streamBody(stream));
          } catch (err) {
            resolve(err);
          }
        })();
      };
    });
    const s = host.open({ method: 'PUT', url: '/kv/CACHE/a', headers: [], app: 'hello' }, false);
    await s.write(new Uint8Array(10));
    await new Promise((r) => setTimeout(r, 10));
    s.reset('PROTO_CANCELLED', 'the app stream failed');
    expect(await failure).toMatchObject({ code: 'PROTO_CANCELLED' });
  });

  it('are dropped when reset in the same turn as they were opened', async () => {
    const { ingress, host } = await pair();
    const opened: number[] = [];
    ingress.onstream = (stream) => void opened.push(stream.id);
    const s = host.open({ method: 'GET', url: '/kv/CACHE/a', headers: [], app: 'hello' }, true);
    s.reset('PROTO_CANCELLED', 'changed my mind');
    const later = host.open({ method: 'GET', url: '/kv/CACHE/b', headers: [], app: 'hello' }, true);
    await new Promise((r) => setTimeout(r, 50));
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
