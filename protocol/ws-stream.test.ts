import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrame } from './codec.ts';
import { errorCodeOf } from './errors.ts';
import { FrameType, LIMITS, type Frame } from './frames.ts';
import { Session, type SessionOptions } from './session.ts';
import type { Stream } from './stream.ts';
import { sessionPair } from '../test/session-pair.ts';

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const pair = (opts: Partial<SessionOptions> = {}, maxMessageSize = 16 * 1024) => sessionPair(open, opts, maxMessageSize);

const UPGRADE = { method: 'GET', url: '/ws', headers: [['upgrade', 'websocket']] as Array<[string, string]> };

/** Opens a WebSocket stream: the server answers 101 and hands its side to `onServer`. */
async function upgraded(opts: Partial<SessionOptions> = {}, maxMessageSize = 16 * 1024, onServer: (s: Stream) => void = () => {}) {
  const p = await pair(opts, maxMessageSize);
  let server!: Stream;
  p.server.onstream = (s) => {
    server = s;
    s.respond({ status: 101, headers: [] });
    onServer(s);
  };
  const client = p.client.open(UPGRADE, true);
  await new Promise<void>((resolve) => (client.onhead = () => resolve()));
  return { ...p, clientStream: client, serverStream: server };
}

/** Gathers the pieces of each message into whole messages, consuming as it goes. */
function messages(stream: Stream, consume = true) {
  const out: Array<{ binary: boolean; data: Uint8Array }> = [];
  let pieces: Uint8Array[] = [];
  let pieceCount = 0;
  stream.onwsdata = (data, binary, fin) => {
    pieces.push(data.slice());
    pieceCount++;
    if (consume) stream.consume(data.byteLength);
    if (!fin) return;
    const size = pieces.reduce((n, p) => n + p.byteLength, 0);
    const whole = new Uint8Array(size);
    let at = 0;
    for (const p of pieces) {
      whole.set(p, at);
      at += p.byteLength;
    }
    out.push({ binary, data: whole });
    pieces = [];
  };
  return { out, pieces: () => pieceCount };
}

function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 1));
};

describe('WebSocket streams', () => {
  it('switch to WebSocket frames on a 101 head, both directions open', async () => {
    const { clientStream, serverStream } = await upgraded();
    expect(clientStream.webSocket).toBe(true);
    expect(serverStream.webSocket).toBe(true);
    expect(clientStream.wsWritable).toBe(true);
    expect(serverStream.wsWritable).toBe(true);
  });

  it('carry text and binary messages both ways, a 1 MiB one cut into pieces that fit a message', async () => {
    const { clientStream, serverStream } = await upgraded({ receiveWindow: 64 * 1024 });
    const atServer = messages(serverStream);
    const atClient = messages(clientStream);
    const big = pattern(1024 * 1024);
    await clientStream.sendWs(new TextEncoder().encode('hi'), false);
    await clientStream.sendWs(big, true);
    await clientStream.sendWs(new Uint8Array(0), true);
    await serverStream.sendWs(pattern(70_000, 3), true);
    await until(() => atServer.out.length === 3 && atClient.out.length === 1);
    expect(atServer.out[0]).toEqual({ binary: false, data: new TextEncoder().encode('hi') });
    expect(atServer.out[1]!.binary).toBe(true);
    expect(Buffer.from(atServer.out[1]!.data).equals(Buffer.from(big))).toBe(true);
    expect(atServer.out[2]!.data.byteLength).toBe(0);
    expect(atServer.pieces()).toBeGreaterThan(1024 * 1024 / (16 * 1024));
    expect(Buffer.from(atClient.out[0]!.data).equals(Buffer.from(pattern(70_000, 3)))).toBe(true);
  });

  it('send no more than the window while the receiver does not consume', async () => {
    const window = 32 * 1024;
    const { clientStream, serverStream } = await upgraded({ receiveWindow: window });
    const atServer = messages(serverStream, false);
    let received = 0;
    const previous = serverStream.onwsdata!;
    serverStream.onwsdata = (d, b, f) => {
      received += d.byteLength;
      previous(d, b, f);
    };
    let sent = false;
    void clientStream.sendWs(pattern(256 * 1024), true).then(() => (sent = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(received).toBe(window);
    expect(sent).toBe(false);
    // Credit back: the rest flows.
    serverStream.onwsdata = (d, b, f) => {
      received += d.byteLength;
      previous(d, b, f);
      serverStream.consume(d.byteLength);
    };
    serverStream.consume(window);
    await until(() => sent && atServer.out.length === 1);
    expect(received).toBe(256 * 1024);
  });

  it('propagate close codes and reasons both ways; the stream ends once both sides closed', async () => {
    const { client, server, clientStream, serverStream } = await upgraded();
    const atServer: Array<[number, string]> = [];
    const atClient: Array<[number, string]> = [];
    serverStream.onwsclose = (code, reason) => {
      atServer.push([code, reason]);
      serverStream.closeWs(code, reason);
    };
    clientStream.onwsclose = (code, reason) => atClient.push([code, reason]);
    clientStream.closeWs(4001, 'done here');
    expect(clientStream.wsWritable).toBe(false);
    await until(() => atClient.length === 1);
    expect(atServer).toEqual([[4001, 'done here']]);
    expect(atClient).toEqual([[4001, 'done here']]);
    expect(clientStream.closed).toBe(true);
    await until(() => serverStream.closed);
    expect(client.openStreams).toBe(0);
    expect(server.openStreams).toBe(0);
  });

  it('refuse a send after close', async () => {
    const { clientStream } = await upgraded();
    clientStream.closeWs(1000);
    await expect(clientStream.sendWs(new Uint8Array(1), true)).rejects.toMatchObject({ code: 'PROTO_STREAM_STATE' });
  });

  it('fail every WebSocket stream when the session closes', async () => {
    const { client, clientStream } = await upgraded();
    const reset = new Promise<string>((resolve) => (clientStream.onreset = (e) => resolve(e.code)));
    client.close('PROTO_HEARTBEAT_TIMEOUT', 'gone');
    expect(await reset).toBe('PROTO_HEARTBEAT_TIMEOUT');
  });

  it('treat WebSocket frames on a stream that is not one as a violation of that stream', async () => {
    const { client, server, a } = await pair();
    const resets: string[] = [];
    server.onstream = (s) => {
      s.onreset = (e) => resets.push(e.code);
    };
    const stream = client.open({ method: 'POST', url: '/', headers: [] }, false);
    const seen = new Promise<string>((resolve) => (stream.onreset = (e) => resolve(e.code)));
    await new Promise((r) => setTimeout(r, 5));
    a.send(encodeFrame({ type: FrameType.WS_DATA, stream: stream.id, binary: true, fin: true, data: new Uint8Array(1) }));
    expect(await seen).toBe('PROTO_STREAM_STATE');
    expect(resets).toEqual(['PROTO_STREAM_STATE']);
  });

  it('refuse a 101 at protocol version 2: the host cannot switch a stream below version 3', async () => {
    const { client, server } = await pair();
    server.version = 2;
    let error: unknown;
    server.onstream = (s) => {
      try {
        s.respond({ status: 101, headers: [] });
      } catch (err) {
        error = err;
        s.reset('PROTO_VERSION', 'old');
      }
    };
    const stream = client.open(UPGRADE, true);
    await new Promise<void>((resolve) => (stream.onreset = () => resolve()));
    expect(errorCodeOf(error)).toBe('PROTO_VERSION');
  });

  it('fail a stream whose peer sends WebSocket data past its credit', async () => {
    const window = 16 * 1024;
    const { a, clientStream, serverStream } = await upgraded({ receiveWindow: window });
    serverStream.onwsdata = () => {};
    const seen = new Promise<string>((resolve) => (serverStream.onreset = (e) => resolve(e.code)));
    // Forged: more than the window, in pieces that each fit a message.
    for (let i = 0; i < 3; i++) a.send(encodeFrame({ type: FrameType.WS_DATA, stream: clientStream.id, binary: true, fin: false, data: new Uint8Array(8000) }));
    expect(await seen).toBe('PROTO_FLOW_CONTROL');
  });
});

describe('WebSocket frame limits', () => {
  const raw = (v: unknown[]): Uint8Array => {
    // Encoded through a valid frame and patched, so the test does not depend on msgpackr here.
    return encodeFrame({ type: FrameType.WS_CLOSE, stream: 1, code: v[2] as number, reason: v[3] as string } as Frame);
  };
  it('refuse a close reason longer than RFC 6455 allows', () => {
    expect(() => decodeFrames(raw([14, 1, 1000, 'x'.repeat(LIMITS.wsReasonLength + 1)]))).toThrow(expect.objectContaining({ code: 'PROTO_FRAME_INVALID' }));
  });
  it('refuse a close code past 4999', () => {
    expect(() => decodeFrames(raw([14, 1, 5000, '']))).toThrow(expect.objectContaining({ code: 'PROTO_FRAME_INVALID' }));
  });
  it('refuse unknown WS_DATA flags and WebSocket frames on stream 0', () => {
    // [13, 1, 4, bin 0]: flag bit 2 is not defined
    expect(() => decodeFrames(Uint8Array.from([0x94, 0x0d, 0x01, 0x04, 0xc4, 0x00]))).toThrow(expect.objectContaining({ code: 'PROTO_FRAME_INVALID' }));
    // [13, 0, 3, bin 0]
    expect(() => decodeFrames(Uint8Array.from([0x94, 0x0d, 0x00, 0x03, 0xc4, 0x00]))).toThrow(expect.objectContaining({ code: 'PROTO_FRAME_INVALID' }));
  });
});
