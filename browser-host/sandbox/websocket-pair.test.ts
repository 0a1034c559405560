/**
 * The Workers WebSocket API of a sandbox (websocket-pair.ts, the Response shim in
 * web-compat.ts) and the host's check of what a worker posts on a socket's port (messages.ts),
 * with Node's MessageChannel standing in for the worker's.
 */
import { describe, expect, it } from 'vitest';
import { installResponseShim } from '../web-compat.ts';
import { parseWsMessage, type WsToHost } from './messages.ts';
import { serverEndOf, WebSocketPair } from './websocket-pair.ts';

const scope = { Response: globalThis.Response };
installResponseShim(scope);
const ShimResponse = scope.Response;

function nextMessage(port: MessagePort): Promise<WsToHost> {
  return new Promise((resolve) => {
    port.onmessage = (e) => resolve(e.data as WsToHost);
  });
}

describe('new Response() with a webSocket', () => {
  it('reports status 101 and carries the client end, as in Workers', () => {
    const pair = new WebSocketPair();
    const response = new ShimResponse(null, { status: 101, webSocket: pair[0] } as ResponseInit);
    expect(response.status).toBe(101);
    expect(response.ok).toBe(false);
    expect(serverEndOf(response)).toBe(pair[1]);
  });

  it('refuses a 101 without a webSocket, and a webSocket with another status', () => {
    expect(() => new ShimResponse(null, { status: 101 })).toThrow(RangeError);
    expect(() => new ShimResponse(null, { status: 200, webSocket: new WebSocketPair()[0] } as ResponseInit)).toThrow(RangeError);
  });
});

describe('the server end of a WebSocketPair', () => {
  it('queues what it sends until it is attached, then posts text and binary in order', async () => {
    const { 1: server } = new WebSocketPair();
    server.accept();
    expect(server.readyState).toBe(1);
    server.send('hi');
    server.send(new Uint8Array([1, 2, 3]));
    const channel = new MessageChannel();
    const got: WsToHost[] = [];
    const two = new Promise<void>((resolve) => {
      channel.port2.onmessage = (e) => {
        got.push(e.data as WsToHost);
        if (got.length === 2) resolve();
      };
    });
    server.attach(channel.port1);
    await two;
    expect(got[0]).toEqual({ t: 'send', data: 'hi' });
    expect(got[1]!.t).toBe('send');
    expect([...new Uint8Array((got[1] as { data: ArrayBuffer }).data)]).toEqual([1, 2, 3]);
    channel.port1.close();
  });

  it('delivers messages only once accepted, and acknowledges each after its listeners ran', async () => {
    const { 1: server } = new WebSocketPair();
    const channel = new MessageChannel();
    server.attach(channel.port1);
    const seen: unknown[] = [];
    server.addEventListener('message', (e) => seen.push((e as MessageEvent).data));
    channel.port2.postMessage({ t: 'message', data: 'early', bytes: 5 });
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([]);
    const ack = nextMessage(channel.port2);
    server.accept();
    expect(await ack).toEqual({ t: 'ack', bytes: 5 });
    expect(seen).toEqual(['early']);
    channel.port1.close();
  });

  it('refuses close codes a handler may not send and reasons over 123 bytes', () => {
    const { 1: server } = new WebSocketPair();
    server.accept();
    expect(() => server.close(1005)).toThrow();
    expect(() => server.close(2000)).toThrow();
    expect(() => server.close(1000, 'x'.repeat(124))).toThrow();
    server.close(4000, 'fine');
    expect(server.readyState).toBe(2);
    expect(() => server.send('late')).toThrow(TypeError);
  });
});

describe('parseWsMessage', () => {
  it('takes sends, closes and acks of the right shape', () => {
    expect(parseWsMessage({ t: 'send', data: 'x' })).toEqual({ t: 'send', data: 'x' });
    expect(parseWsMessage({ t: 'close', code: 4000, reason: 'bye' })).toEqual({ t: 'close', code: 4000, reason: 'bye' });
    expect(parseWsMessage({ t: 'close', code: 0, reason: '' })).toEqual({ t: 'close', code: 0, reason: '' });
    expect(parseWsMessage({ t: 'ack', bytes: 10 })).toEqual({ t: 'ack', bytes: 10 });
  });

  it('refuses anything else a worker may forge', () => {
    for (const bad of [null, 'send', { t: 'send', data: 5 }, { t: 'close', code: 999, reason: '' }, { t: 'close', code: 5000, reason: '' }, { t: 'close', code: 1000, reason: 'x'.repeat(124) }, { t: 'ack', bytes: -1 }, { t: 'nope' }]) {
      expect(typeof parseWsMessage(bad)).toBe('string');
    }
  });
});
