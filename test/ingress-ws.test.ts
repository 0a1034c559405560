/**
 * The ingress's WebSocket gateway (ingress/ws-gateway.ts) against Node hosts that speak the
 * WebSocket frames directly on their streams: idle timeout, maximum message size both ways,
 * backpressure when the host does not read, a host that goes away, subprotocols and bad 101
 * heads. Real signaling, the real WebSocket transport, real sockets on port 0.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Stream } from '../protocol/index.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

const MAX_MESSAGE = 64 * 1024;
let net: NodeNetwork;
const open = new Set<WebSocket>();

beforeAll(async () => {
  net = await startNodeNetwork({
    webSockets: { idleTimeoutMs: 400, maxMessageBytes: MAX_MESSAGE },
    session: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1000 },
  });
});
afterAll(() => net.close());
afterEach(async () => {
  for (const ws of open) ws.terminate();
  open.clear();
  await net.removeHosts();
});

/** A host that accepts every upgrade (101 with `headers`) and hands its stream to `onSocket`. */
function acceptor(onSocket: (s: Stream) => void, headers: Array<[string, string]> = []) {
  return (s: Stream) => {
    s.onreset = () => {};
    s.respond({ status: 101, headers });
    onSocket(s);
  };
}

function connect(path = '/', protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${net.ingress.url.replace(/^http/, 'ws')}${path}`, protocols);
    open.add(ws);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode, code: res.headers['dcdn-error'] })));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('the WebSocket gateway', () => {
  it('closes a socket without messages at the idle timeout with 1001, both sides', async () => {
    let hostSaw: [number, string] | null = null;
    await net.addHost('idle', acceptor((s) => (s.onwsclose = (code, reason) => ((hostSaw = [code, reason]), s.closeWs(code, reason)))));
    const ws = await connect();
    expect(await closed(ws)).toEqual({ code: 1001, reason: 'idle timeout' });
    await until(() => hostSaw !== null);
    expect(hostSaw).toEqual([1001, 'idle timeout']);
  });

  it('closes with 1009 a message over the maximum, from the visitor or from the host', async () => {
    await net.addHost('big', acceptor((s) => {
      s.onwsdata = (d) => s.consume(d.byteLength);
      s.onwsclose = (code) => s.closeWs(code);
      if (s.request.url.endsWith('/from-host')) void s.sendWs(new Uint8Array(MAX_MESSAGE + 1), true);
    }));
    const a = await connect();
    a.send(Buffer.alloc(MAX_MESSAGE + 1));
    expect((await closed(a)).code).toBe(1009);
    const b = await connect('/from-host');
    expect(await closed(b)).toEqual({ code: 1009, reason: 'message too big' });
  });

  it('stops reading a visitor whose host does not read, and holds at most a high-water mark and a message', async () => {
    let received = 0;
    let stream: Stream | null = null;
    await net.addHost('deaf', acceptor((s) => {
      stream = s;
      s.onwsdata = (d) => (received += d.byteLength); // never consumed: no credit goes back
    }));
    const ws = await connect();
    net.ingress.webSockets.stats.maxBufferedBytes = 0;
    const chunk = Buffer.alloc(32 * 1024, 7);
    for (let i = 0; i < 128; i++) ws.send(chunk); // 4 MiB
    // The ingress has read up to its mark and stopped reading the visitor.
    await until(() => net.ingress.webSockets.stats.bufferedBytes >= net.ingress.webSockets.options.highWaterBytes, 10_000);
    await new Promise((r) => setTimeout(r, 200));
    const stats = net.ingress.webSockets.stats;
    // The host got one window's worth; the ingress holds at most its mark plus what one read held.
    expect(received).toBeLessThanOrEqual(256 * 1024);
    expect(stats.maxBufferedBytes).toBeLessThan(net.ingress.webSockets.options.highWaterBytes + MAX_MESSAGE + chunk.byteLength);
    // Credit back: everything arrives.
    stream!.onwsdata = (d) => {
      received += d.byteLength;
      stream!.consume(d.byteLength);
    };
    stream!.consume(received);
    await until(() => received === 128 * chunk.byteLength, 10_000);
  });

  it('closes every socket with 1012 when the host goes away', async () => {
    await net.addHost('leaver', acceptor(() => {}));
    const sockets = await Promise.all([connect(), connect(), connect()]);
    const codes = Promise.all(sockets.map((ws) => closed(ws).then((c) => c.code)));
    await net.removeHosts();
    expect(await codes).toEqual([1012, 1012, 1012]);
  });

  it('passes the subprotocol the handler chose, and its own headers', async () => {
    await net.addHost('proto', acceptor(() => {}, [['sec-websocket-protocol', 'chat'], ['x-app', 'yes']]));
    const ws = await connect('/', ['chat', 'superchat']);
    expect(ws.protocol).toBe('chat');
  });

  it('answers 502 INGRESS_BAD_RESPONSE to a 101 head with a header the wire must not carry', async () => {
    await net.addHost('crlf', acceptor(() => {}, [['x-evil', 'a\r\nset-cookie: b']]));
    await expect(connect()).rejects.toMatchObject({ status: 502, code: 'INGRESS_BAD_RESPONSE' });
  });

  it('forwards a handler that refuses the upgrade with its own status', async () => {
    await net.addHost('refuses', (s) => {
      s.respond({ status: 403, headers: [['content-length', '0']] }, true);
    });
    await expect(connect()).rejects.toMatchObject({ status: 403 });
  });
});
