import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeFrame } from './codec.ts';
import { FrameType, LIMITS, PROTOCOL_VERSION } from './frames.ts';
import { createMemoryChannelPair, type MemoryChannel } from './memory-channel.ts';
import { Session, type SessionOptions } from './session.ts';
import type { ResponseHead, Stream, StreamError } from './stream.ts';
import { sessionPair } from '../test/session-pair.ts';

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

const pair = (opts: Partial<SessionOptions> = {}, maxMessageSize = 16 * 1024) => sessionPair(open, opts, maxMessageSize);

/**
 * A pair on fake timers: the memory channel delivers one message per (fake) macrotask and the
 * sessions' heartbeats run on fake time, so `settle(ms)` runs everything due in the next `ms`
 * whatever the machine's load, and a "nothing more arrived" check means it.
 */
async function fakePair(opts: Partial<SessionOptions> = {}, maxMessageSize = 16 * 1024) {
  vi.useFakeTimers();
  const paired = pair(opts, maxMessageSize);
  await settle(10);
  return paired;
}

/** Runs the fake clock forward, with every timer and delivery due by then. */
async function settle(ms = 50): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** Collects a stream's response: head, body bytes and how it ended. */
function collect(stream: Stream, consume = true) {
  const chunks: Uint8Array[] = [];
  let head: ResponseHead | undefined;
  const done = new Promise<{ head?: ResponseHead; body: Uint8Array; error?: StreamError }>((resolve) => {
    stream.onhead = (h) => (head = h);
    stream.ondata = (c) => {
      chunks.push(c.slice());
      if (consume) stream.consume(c.byteLength);
    };
    stream.onend = () => resolve({ head, body: join(chunks) });
    stream.onreset = (error) => resolve({ head, body: join(chunks), error });
  });
  return done;
}

function join(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** A server that echoes each request body back as the response body. */
function echoServer(server: Session) {
  server.onstream = (s) => {
    s.respond({ status: 200, headers: [['x-echo', s.request.url]] });
    if (s.remoteEnded) return s.end();
    let chain = Promise.resolve();
    s.ondata = (c) => {
      const copy = c.slice();
      chain = chain.then(() => s.write(copy)).then(() => s.consume(copy.byteLength));
    };
    s.onend = () => void chain.then(() => s.end());
    s.onreset = () => {};
  };
}

describe('Session', () => {
  it('exchanges HELLO and becomes ready on both sides', async () => {
    const { client, server } = await pair({ agent: 'test-agent' });
    expect(client.peerAgent).toBe('test-agent');
    expect(server.peerAgent).toBe('test-agent');
  });

  it('carries a request without a body and a response with one', async () => {
    const { client, server } = await pair();
    server.onstream = (s) => {
      expect(s.request).toEqual({ method: 'GET', url: '/hi?x=1', headers: [['accept', '*/*']], app: '' });
      expect(s.remoteEnded).toBe(true);
      s.respond({ status: 201, headers: [['content-type', 'text/plain']] });
      void s.write(new TextEncoder().encode('hello')).then(() => s.end());
    };
    const res = await collect(client.open({ method: 'GET', url: '/hi?x=1', headers: [['accept', '*/*']] }, true));
    expect(res.head).toEqual({ status: 201, headers: [['content-type', 'text/plain']] });
    expect(new TextDecoder().decode(res.body)).toBe('hello');
    expect(res.error).toBeUndefined();
    expect(client.openStreams).toBe(0);
    expect(server.openStreams).toBe(0);
  });

  it('streams a 4 MiB body both ways byte-identical through small messages', async () => {
    const { client, server } = await pair({ receiveWindow: 64 * 1024 }, 8 * 1024);
    echoServer(server);
    const body = pattern(4 * 1024 * 1024);
    const stream = client.open({ method: 'POST', url: '/echo', headers: [] }, false);
    const res = collect(stream);
    await stream.write(body);
    stream.end();
    const { body: echoed, error } = await res;
    expect(error).toBeUndefined();
    expect(echoed.byteLength).toBe(body.byteLength);
    expect(Buffer.from(echoed).equals(Buffer.from(body))).toBe(true);
  });

  it('runs many concurrent streams and keeps their bodies apart', async () => {
    const { client, server } = await pair();
    echoServer(server);
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const s = client.open({ method: 'POST', url: `/${i}`, headers: [] }, false);
        const res = collect(s);
        await s.write(pattern(3000 + i, i));
        s.end();
        const r = await res;
        return Buffer.from(r.body).equals(Buffer.from(pattern(3000 + i, i))) && r.head?.headers[0]?.[1] === `/${i}`;
      }),
    );
    expect(results.every(Boolean)).toBe(true);
  });

  it('keeps body frames that arrive with the head until the acceptor attaches its handlers later', async () => {
    const { server, a } = await pair();
    const got = new Promise<{ body: string; ended: boolean }>((resolve) => {
      server.onstream = (s) => {
        // Like a host looking up the app first: handlers only after an await.
        void Promise.resolve().then(async () => {
          // A later task: the head's message (with the body frames) was handled long before.
          await new Promise((r) => setImmediate(r));
          let body = '';
          s.ondata = (c) => {
            body += new TextDecoder().decode(c);
            s.consume(c.byteLength);
          };
          s.onend = () => resolve({ body, ended: true });
        });
      };
    });
    // Head, two body frames and the end in one message.
    const parts = [
      encodeFrame({ type: FrameType.REQ_HEAD, stream: 1, method: 'POST', url: '/', headers: [], endStream: false, app: '' }),
      encodeFrame({ type: FrameType.REQ_BODY, stream: 1, data: new TextEncoder().encode('hello ') }),
      encodeFrame({ type: FrameType.REQ_BODY, stream: 1, data: new TextEncoder().encode('world') }),
      encodeFrame({ type: FrameType.REQ_END, stream: 1 }),
    ];
    a.send(Uint8Array.from(parts.flatMap((p) => [...p])));
    expect(await got).toEqual({ body: 'hello world', ended: true });
  });

  it('coalesces frames queued in the same tick into few messages', async () => {
    const { client, server, a } = await pair();
    server.onstream = (s) => s.respond({ status: 204, headers: [] }, true);
    const before = a.messagesSent;
    const all = Array.from({ length: 50 }, () => collect(client.open({ method: 'GET', url: '/', headers: [] }, true)));
    await Promise.all(all);
    // 50 request heads, each about 12 bytes, fit in one 16 KiB message.
    expect(a.messagesSent - before).toBeLessThanOrEqual(2);
  });

  it('never lets the receiver buffer more than one window when its consumer stops reading', async () => {
    const window = 32 * 1024;
    const { client, server } = await fakePair({ receiveWindow: window });
    let written = 0;
    server.onstream = (s) => {
      s.respond({ status: 200, headers: [] });
      void (async () => {
        for (let i = 0; i < 100; i++) {
          await s.write(pattern(8 * 1024));
          written += 8 * 1024;
        }
      })().catch(() => {});
    };
    const stream = client.open({ method: 'GET', url: '/', headers: [] }, true);
    let received = 0;
    stream.ondata = (c) => (received += c.byteLength); // never consumes
    await settle(200);
    expect(received).toBe(window);
    expect(written).toBeLessThanOrEqual(window);
    // Reading resumes the flow.
    stream.consume(received);
    await settle(100);
    expect(received).toBeGreaterThan(window);
  });

  it('resets a stream whose peer sends more than its credit, and only that stream', async () => {
    const { client, server, b } = await fakePair({ receiveWindow: 1024 });
    let victim: Stream | undefined;
    server.onstream = (s) => {
      victim ??= s;
      s.respond({ status: 200, headers: [] });
    };
    const bad = collect(client.open({ method: 'GET', url: '/a', headers: [] }, true));
    const good = client.open({ method: 'GET', url: '/b', headers: [] }, true);
    const goodRes = collect(good);
    await settle();
    // Bypass the server's flow control: write 2 KiB straight onto the channel.
    b.send(encodeFrame({ type: FrameType.RES_BODY, stream: victim!.id, data: new Uint8Array(2048) }));
    await settle();
    expect((await bad).error?.code).toBe('PROTO_FLOW_CONTROL');
    expect(client.isClosed).toBe(false);
    await settle();
    expect(good.closed).toBe(false);
    void goodRes;
  });

  it('drops and counts frames for streams that never existed', async () => {
    const { client, b } = await fakePair();
    b.send(encodeFrame({ type: FrameType.RES_HEAD, stream: 999, status: 200, headers: [], endStream: true }));
    b.send(encodeFrame({ type: FrameType.RES_BODY, stream: 1001, data: new Uint8Array(4) }));
    await settle();
    expect(client.stats.unknownStreamFrames).toBe(2);
    expect(client.isClosed).toBe(false);
  });

  it('refuses a request head on an id the peer may not use', async () => {
    const { server, a } = await fakePair();
    const seen: Stream[] = [];
    server.onstream = (s) => seen.push(s);
    a.send(encodeFrame({ type: FrameType.REQ_HEAD, stream: 2, method: 'GET', url: '/', headers: [], endStream: true, app: '' }));
    await settle();
    expect(seen).toHaveLength(0);
    expect(server.stats.streamErrors).toBe(1);
  });

  it('fails only the stream named by an invalid frame', async () => {
    const { client, server, b } = await fakePair();
    server.onstream = (s) => (s.onreset = () => {});
    const s1 = collect(client.open({ method: 'GET', url: '/', headers: [] }, true));
    const s2 = client.open({ method: 'GET', url: '/', headers: [] }, true);
    await settle();
    b.send(Uint8Array.from([0x94, 0x04, 0x01, 0xa1, 0x78, 0x90])); // RES_HEAD with a string status
    await settle();
    expect((await s1).error?.code).toBe('PROTO_FRAME_INVALID');
    expect(s2.closed).toBe(false);
    expect(client.isClosed).toBe(false);
  });

  it('connects whatever the length of its agent name (a HELLO the peer refuses would close the session)', async () => {
    const { client, server } = await pair({ agent: `dcdn-host/${'n'.repeat(300)}` });
    expect(client.isOpen && server.isOpen).toBe(true);
    expect(client.peerAgent).toHaveLength(LIMITS.agentLength);
  });

  it('answers a request head its decoder refuses with a RESET, not silence', async () => {
    const { client, server } = await pair({}, 256 * 1024);
    const seen: Stream[] = [];
    server.onstream = (s) => seen.push(s);
    const many = Array.from({ length: LIMITS.headerCount + 1 }, (_, i): [string, string] => [`x-h${i}`, 'v']);
    const tooMany = await collect(client.open({ method: 'GET', url: '/', headers: many }, true));
    expect(tooMany.error?.code).toBe('PROTO_FRAME_INVALID');
    const long = await collect(client.open({ method: 'GET', url: '/', headers: [['x-big', 'v'.repeat(LIMITS.headerLength + 1)]] }, true));
    expect(long.error?.code).toBe('PROTO_FRAME_INVALID');
    const bigHead = Array.from({ length: 5 }, (_, i): [string, string] => [`x-h${i}`, 'v'.repeat(LIMITS.headerLength)]);
    const big = await collect(client.open({ method: 'GET', url: '/', headers: bigHead }, true));
    expect(big.error?.code).toBe('PROTO_FRAME_INVALID');
    // The session goes on: the next head within the limits is served.
    server.onstream = (s) => s.respond({ status: 204, headers: [] }, true);
    expect((await collect(client.open({ method: 'GET', url: '/', headers: [] }, true))).head?.status).toBe(204);
    expect(seen).toHaveLength(0);
    expect(server.stats.streamErrors).toBe(3);
    expect(client.openStreams).toBe(0);
    expect(server.openStreams).toBe(0);
  });

  it('resets a stream whose response head the opener refuses, telling the acceptor', async () => {
    const { client, server } = await pair({}, 256 * 1024);
    const acceptorSaw = new Promise<StreamError>((resolve) => {
      server.onstream = (s) => {
        s.onreset = resolve;
        s.respond({ status: 200, headers: Array.from({ length: LIMITS.headerCount + 1 }, (_, i): [string, string] => [`x-h${i}`, 'v']) });
      };
    });
    const res = await collect(client.open({ method: 'GET', url: '/', headers: [] }, true));
    expect(res.error?.code).toBe('PROTO_FRAME_INVALID');
    expect((await acceptorSaw).code).toBe('PROTO_FRAME_INVALID');
    expect(server.openStreams).toBe(0);
  });

  it('closes the session on bytes that are not msgpack frames, failing every stream', async () => {
    const { client, b } = await pair();
    const r = collect(client.open({ method: 'GET', url: '/', headers: [] }, true));
    b.send(Uint8Array.from([0xc1, 0x00]));
    expect((await r).error?.code).toBe('PROTO_DECODE');
    expect(client.isClosed).toBe(true);
  });

  it('propagates a reset from the acceptor with its code', async () => {
    const { client, server } = await pair();
    server.onstream = (s) => s.reset('HOST_HANDLER_ERROR', 'boom');
    const r = await collect(client.open({ method: 'GET', url: '/', headers: [] }, true));
    expect(r.error).toEqual({ code: 'HOST_HANDLER_ERROR', message: 'boom' });
  });

  it('tells the acceptor when the opener cancels, and rejects its pending writes', async () => {
    const { client, server } = await pair({ receiveWindow: 1024 });
    const cancelled = new Promise<{ err: StreamError; write: unknown }>((resolve) => {
      server.onstream = (s) => {
        s.respond({ status: 200, headers: [] });
        const write = s.write(new Uint8Array(64 * 1024)).catch((e) => e);
        s.onreset = (err) => void write.then((w) => resolve({ err, write: w }));
      };
    });
    const stream = client.open({ method: 'GET', url: '/', headers: [] }, true);
    stream.ondata = () => {};
    stream.onhead = () => stream.reset('PROTO_CANCELLED', 'client went away');
    const { err, write } = await cancelled;
    expect(err.code).toBe('PROTO_CANCELLED');
    expect(write).toMatchObject({ code: 'PROTO_STREAM_STATE' });
  });

  it('declares the peer dead when heartbeats stop, within the timeout', async () => {
    const { client, server, b } = await fakePair({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    const r = collect(client.open({ method: 'GET', url: '/', headers: [] }, true));
    server.onstream = () => {};
    b.pause(); // the server's messages stop arriving, as when a tab freezes or dies
    let closed: string | undefined;
    client.onclose = (e) => (closed = e.code);
    // Fake time: still open just short of the timeout, closed within one check after it.
    await settle(150);
    expect(closed).toBeUndefined();
    await settle(150);
    expect(closed).toBe('PROTO_HEARTBEAT_TIMEOUT');
    expect((await r).error?.code).toBe('PROTO_HEARTBEAT_TIMEOUT');
  });

  it('with default settings notices a silent peer within 3 s', async () => {
    const { client, b } = await fakePair();
    await settle(300);
    b.pause();
    let closed = false;
    client.onclose = () => (closed = true);
    await settle(2000);
    expect(closed).toBe(false);
    await settle(1000);
    expect(closed).toBe(true);
  });

  it('fails every stream when the channel closes', async () => {
    const { client, a } = await pair();
    const r = collect(client.open({ method: 'GET', url: '/', headers: [] }, true));
    a.close('gone');
    expect((await r).error?.code).toBe('PROTO_SESSION_CLOSED');
  });

  it('closes with PROTO_VERSION when the peer speaks a version older than the oldest it speaks', async () => {
    const [a, b] = createMemoryChannelPair();
    const client = new Session(a, { role: 'client' });
    open.push(client);
    b.onmessage = () => {};
    b.send(encodeFrame({ type: FrameType.HELLO, stream: 0, version: 0, receiveWindow: 1024, agent: 'ancient' }));
    await expect(client.ready).rejects.toMatchObject({ code: 'PROTO_VERSION' });
  });

  it('runs at its own version with a newer peer, so hosts can be upgraded before ingresses', async () => {
    const [a, b] = createMemoryChannelPair();
    const client = new Session(a, { role: 'client' });
    open.push(client);
    b.onmessage = () => {};
    b.send(encodeFrame({ type: FrameType.HELLO, stream: 0, version: 99, receiveWindow: 1024, agent: 'future' }));
    await client.ready;
    expect(client.version).toBe(PROTOCOL_VERSION);
  });

  it('waits for the channel to drain instead of queueing without bound', async () => {
    const { client, server, a } = await fakePair({ highWaterMark: 64 * 1024, receiveWindow: 1024 * 1024 });
    server.onstream = (s) => {
      s.ondata = () => {};
      s.onend = () => s.respond({ status: 204, headers: [] }, true);
    };
    const stream = client.open({ method: 'POST', url: '/', headers: [] }, false);
    void collect(stream);
    a.pause(); // the network stalls
    let done = false;
    const write = stream.write(new Uint8Array(512 * 1024)).then(() => (done = true));
    await settle();
    expect(done).toBe(false);
    expect(a.bufferedAmount).toBeLessThanOrEqual(64 * 1024 + 16 * 1024);
    (a as MemoryChannel).resume();
    await settle(1000);
    await write;
    expect(done).toBe(true);
  });
});
