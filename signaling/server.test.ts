import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import type { PeerInfo, ServerMessage } from '../protocol/index.ts';
import { createSignalingServer, type SignalingServer, type SignalingServerOptions } from './server.ts';
import { mintToken, type Role } from './token.ts';

const SECRET = 'server-test-secret-0123456789';

/** A bare `ws` client that records everything the server sends. */
class RawPeer {
  readonly socket: WebSocket;
  readonly received: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #consumed = new Set<number>();
  #waiters: Array<() => void> = [];

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data) => {
      this.received.push(JSON.parse(String(data)) as ServerMessage);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const wake of this.#waiters.splice(0)) wake();
      });
    });
  }

  static async connect(url: string, token: string | null, options: ClientOptions = {}): Promise<RawPeer> {
    const target = token === null ? url : `${url}?token=${encodeURIComponent(token)}`;
    const socket = new WebSocket(target, options);
    const peer = new RawPeer(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return peer;
  }

  /** Connects and says hello; resolves with the welcome. */
  static async join(url: string, role: Role, info: Record<string, unknown> = {}, sub?: string): Promise<[RawPeer, Extract<ServerMessage, { type: 'welcome' }>]> {
    const peer = await RawPeer.connect(url, token(role, sub));
    peer.send({ type: 'hello', info });
    return [peer, await peer.next('welcome')];
  }

  /** The close event, failing the test if it does not come within `timeoutMs`. */
  async closeEvent(timeoutMs = 3000): Promise<{ code: number; reason: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next not yet consumed message of `type`. */
  async next<T extends ServerMessage['type']>(type: T, timeoutMs = 3000): Promise<Extract<ServerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex((message, i) => message.type === type && !this.#consumed.has(i));
      if (index >= 0) {
        this.#consumed.add(index);
        return this.received[index] as Extract<ServerMessage, { type: T }>;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`no ${type} message; got ${JSON.stringify(this.received)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Round-trips through the server, so everything it sent us before is now in `received`. */
  async sync(): Promise<void> {
    this.send({ type: 'signal', to: 'sync-probe', data: null });
    await this.next('error');
  }

  types(): string[] {
    return this.received.map((message) => message.type);
  }
}

/** The refused upgrade as the client saw it: status, headers and JSON body. */
function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; code: unknown; body: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.on('open', () => reject(new Error('the upgrade was accepted')));
    socket.on('error', reject);
    socket.on('unexpected-response', (request, response: IncomingMessage) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, code: response.headers['dcdn-error'], body: JSON.parse(text) });
      });
    });
  });
}

function token(role: Role, sub?: string, now?: number): string {
  return mintToken(SECRET, sub === undefined ? { role, ttlSeconds: 60 } : { role, sub, ttlSeconds: 60 }, now);
}

let server: SignalingServer | null = null;
const peers: RawPeer[] = [];

async function start(options: Partial<SignalingServerOptions> = {}): Promise<{ http: string; ws: string }> {
  server = createSignalingServer({ secret: SECRET, ...options });
  const http = await server.listen();
  return { http, ws: `${http.replace(/^http/, 'ws')}/v1/signal` };
}

async function join(url: string, role: Role, info: Record<string, unknown> = {}, sub?: string) {
  const result = await RawPeer.join(url, role, info, sub);
  peers.push(result[0]);
  return result;
}

async function connect(url: string, role: Role, options: ClientOptions = {}): Promise<RawPeer> {
  const peer = await RawPeer.connect(url, token(role), options);
  peers.push(peer);
  return peer;
}

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.socket.terminate();
  await server?.close();
  server = null;
});

describe('upgrade authentication', () => {
  it('refuses an upgrade without a token with 401 SIG_TOKEN_MISSING before any WebSocket exists', async () => {
    const { ws } = await start();
    const refused = await refusedUpgrade(ws);
    expect(refused).toEqual({
      status: 401,
      code: 'SIG_TOKEN_MISSING',
      body: { error: { code: 'SIG_TOKEN_MISSING', message: expect.any(String) } },
    });
    expect(server!.peers()).toEqual([]);
  });

  it('refuses a tampered token with 401 SIG_TOKEN_INVALID', async () => {
    const { ws } = await start();
    const refused = await refusedUpgrade(`${ws}?token=${token('host').slice(0, -2)}xx`);
    expect([refused.status, refused.code]).toEqual([401, 'SIG_TOKEN_INVALID']);
  });

  it('refuses an expired token with 401 SIG_TOKEN_EXPIRED', async () => {
    const { ws } = await start();
    const expired = token('host', undefined, Math.floor(Date.now() / 1000) - 3600);
    const refused = await refusedUpgrade(`${ws}?token=${expired}`);
    expect([refused.status, refused.code]).toEqual([401, 'SIG_TOKEN_EXPIRED']);
    expect(refused.body).toEqual({ error: { code: 'SIG_TOKEN_EXPIRED', message: expect.any(String) } });
  });

  it('refuses volunteers past the per-address limit with 429 SIG_RATE_LIMITED, but not operator hosts', async () => {
    const { ws } = await start({ maxVolunteersPerAddress: 2 });
    const volunteer = () => mintToken(SECRET, { role: 'host', ttlSeconds: 600, scope: ['volunteer'] });
    const peers = [await RawPeer.connect(ws, volunteer()), await RawPeer.connect(ws, volunteer())];
    try {
      const refused = await refusedUpgrade(`${ws}?token=${volunteer()}`);
      expect([refused.status, refused.code]).toEqual([429, 'SIG_RATE_LIMITED']);
      peers.push(await RawPeer.connect(ws, token('host')));
    } finally {
      for (const p of peers) p.socket.close();
    }
  });

  it('refuses an operator token with 403 SIG_TOKEN_SCOPE', async () => {
    const { ws } = await start();
    const refused = await refusedUpgrade(`${ws}?token=${token('operator')}`);
    expect([refused.status, refused.code]).toEqual([403, 'SIG_TOKEN_SCOPE']);
  });

  it('refuses a malformed Authorization header with 401 SIG_TOKEN_INVALID', async () => {
    const { ws } = await start();
    const refused = await refusedUpgrade(ws, { authorization: `Basic ${token('host')}` });
    expect([refused.status, refused.code]).toEqual([401, 'SIG_TOKEN_INVALID']);
  });

  it('accepts a token in the Authorization header', async () => {
    const { ws } = await start();
    const socket = new WebSocket(ws, { headers: { authorization: `Bearer ${token('ingress')}` } });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.terminate();
  });

  it('answers the same refusal to a plain fetch, with the code in header and body', async () => {
    const { http } = await start();
    const response = await fetch(`${http}/v1/signal?token=${token('operator')}`);
    expect(response.status).toBe(403);
    expect(response.headers.get('dcdn-error')).toBe('SIG_TOKEN_SCOPE');
    expect(await response.json()).toEqual({ error: { code: 'SIG_TOKEN_SCOPE', message: expect.any(String) } });
  });

  it('answers 426 SIG_UPGRADE_REQUIRED to a plain request with a valid token', async () => {
    const { http } = await start();
    const response = await fetch(`${http}/v1/signal?token=${token('host')}`);
    expect(response.status).toBe(426);
    expect(response.headers.get('dcdn-error')).toBe('SIG_UPGRADE_REQUIRED');
  });
});

describe('presence', () => {
  it('welcomes each peer with the peers of the other role only', async () => {
    const { ws } = await start();
    const [, hostA] = await join(ws, 'host', { name: 'a' }, 'volunteer-a');
    const [, hostB] = await join(ws, 'host', { name: 'b' });
    const [, ingress] = await join(ws, 'ingress', { name: 'in' });
    expect(ingress.role).toBe('ingress');
    expect(ingress.peers.map((peer) => peer.id).sort()).toEqual([hostA.id, hostB.id].sort());
    expect(ingress.peers.find((peer) => peer.id === hostA.id)).toEqual({
      id: hostA.id,
      role: 'host',
      sub: 'volunteer-a',
      info: { name: 'a' },
      since: expect.any(Number),
    });
    const [, hostC] = await join(ws, 'host');
    expect(hostC.peers.map((peer) => peer.id)).toEqual([ingress.id]);
    expect(new Set([hostA.id, hostB.id, hostC.id, ingress.id]).size).toBe(4);
  });

  it('announces joins and leaves to the other role only', async () => {
    const { ws } = await start();
    const [ingress] = await join(ws, 'ingress');
    const [hostA] = await join(ws, 'host');
    const [hostB, welcomeB] = await join(ws, 'host', { name: 'b' });
    expect((await ingress.next('join')).peer.role).toBe('host');
    const joinB = await ingress.next('join');
    expect(joinB.peer).toMatchObject({ id: welcomeB.id, role: 'host', info: { name: 'b' } } satisfies Partial<PeerInfo>);

    hostB.socket.close(1000);
    expect(await ingress.next('leave')).toEqual({ type: 'leave', id: welcomeB.id, reason: 'closed' });
    await hostA.sync();
    expect(hostA.types()).toEqual(['welcome', 'error']);
  });

  it('tells hosts when an ingress joins and leaves', async () => {
    const { ws } = await start();
    const [host] = await join(ws, 'host');
    const [ingress, welcome] = await join(ws, 'ingress');
    expect((await host.next('join')).peer.id).toBe(welcome.id);
    ingress.socket.terminate();
    expect(await host.next('leave')).toEqual({ type: 'leave', id: welcome.id, reason: 'closed' });
  });

  it('counts hosts and ingresses on the health endpoint without leaking tokens', async () => {
    const { http, ws } = await start();
    const hostToken = token('host', 'vol-1');
    const host = await RawPeer.connect(ws, hostToken);
    peers.push(host);
    host.send({ type: 'hello', info: { name: 'h' } });
    await host.next('welcome');
    await join(ws, 'host');
    await join(ws, 'ingress');
    await connect(ws, 'ingress'); // connected but no hello yet: not counted
    const response = await fetch(`${http}/v1/health`);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ ok: true, hosts: 2, ingresses: 1 });
    expect(JSON.parse(text).peers).toHaveLength(3);
    expect(text).not.toContain(hostToken);
    expect(text).not.toContain(hostToken.split('.')[2]);
  });
});

describe('relaying', () => {
  it('relays signals both ways with from set by the server', async () => {
    const { ws } = await start();
    const [host, hostWelcome] = await join(ws, 'host');
    const [ingress, ingressWelcome] = await join(ws, 'ingress');
    ingress.send({ type: 'signal', to: hostWelcome.id, data: { sdp: 'offer' } });
    expect(await host.next('signal')).toEqual({ type: 'signal', from: ingressWelcome.id, data: { sdp: 'offer' } });
    host.send({ type: 'signal', to: ingressWelcome.id, data: { candidate: 'c1', sdpMLineIndex: 0 } });
    expect(await ingress.next('signal')).toEqual({ type: 'signal', from: hostWelcome.id, data: { candidate: 'c1', sdpMLineIndex: 0 } });
  });

  it('closes a client that tries to spoof from, and relays nothing', async () => {
    const { ws } = await start();
    const [host, hostWelcome] = await join(ws, 'host');
    const [other, otherWelcome] = await join(ws, 'ingress');
    other.send({ type: 'signal', to: hostWelcome.id, from: 'forged', data: 1 });
    expect(await other.next('error')).toMatchObject({ code: 'SIG_BAD_MESSAGE' });
    expect(await other.closeEvent()).toEqual({ code: 1008, reason: 'SIG_BAD_MESSAGE' });
    expect(await host.next('leave')).toEqual({ type: 'leave', id: otherWelcome.id, reason: 'SIG_BAD_MESSAGE' });
    expect(host.types()).not.toContain('signal');
  });

  it('refuses host-to-host signals with SIG_UNKNOWN_PEER and keeps the connection', async () => {
    const { ws } = await start();
    const [hostA] = await join(ws, 'host');
    const [hostB, welcomeB] = await join(ws, 'host');
    const [ingress, ingressWelcome] = await join(ws, 'ingress');
    hostA.send({ type: 'signal', to: welcomeB.id, data: 'hi' });
    expect(await hostA.next('error')).toEqual({ type: 'error', code: 'SIG_UNKNOWN_PEER', message: expect.any(String), to: welcomeB.id });
    hostA.send({ type: 'signal', to: 'no-such-id', data: 'hi' });
    expect(await hostA.next('error')).toMatchObject({ code: 'SIG_UNKNOWN_PEER', to: 'no-such-id' });
    hostA.send({ type: 'signal', to: ingressWelcome.id, data: 'still here' });
    expect((await ingress.next('signal')).data).toBe('still here');
    await hostB.sync();
    expect(hostB.types()).not.toContain('signal');
  });

  it('refuses ingress-to-ingress signals with SIG_UNKNOWN_PEER', async () => {
    const { ws } = await start();
    const [a] = await join(ws, 'ingress');
    const [, welcomeB] = await join(ws, 'ingress');
    a.send({ type: 'signal', to: welcomeB.id, data: 1 });
    expect(await a.next('error')).toMatchObject({ code: 'SIG_UNKNOWN_PEER', to: welcomeB.id });
  });
});

describe('hostile peers', () => {
  it('closes a connection with 1009 when a message exceeds maxMessageBytes', async () => {
    const { ws } = await start({ maxMessageBytes: 1024 });
    const [ingress] = await join(ws, 'ingress');
    const [host, welcome] = await join(ws, 'host');
    host.send({ type: 'signal', to: 'x', data: 'a'.repeat(2000) });
    expect((await host.closeEvent()).code).toBe(1009);
    expect(await ingress.next('leave')).toEqual({ type: 'leave', id: welcome.id, reason: 'SIG_MESSAGE_TOO_LARGE' });
  });

  it('closes a flooding connection with SIG_RATE_LIMITED and 1008', async () => {
    const { ws } = await start({ rateLimit: { perSecond: 1, burst: 5 } });
    const [ingress] = await join(ws, 'ingress');
    const [host, welcome] = await join(ws, 'host');
    for (let i = 0; i < 20; i += 1) host.send({ type: 'signal', to: 'nobody', data: i });
    expect(await host.next('error')).toMatchObject({ code: 'SIG_UNKNOWN_PEER' });
    expect(await host.closeEvent()).toEqual({ code: 1008, reason: 'SIG_RATE_LIMITED' });
    expect(host.received.filter((message) => message.type === 'error').map((message) => (message as { code: string }).code)).toEqual([
      'SIG_UNKNOWN_PEER',
      'SIG_UNKNOWN_PEER',
      'SIG_UNKNOWN_PEER',
      'SIG_UNKNOWN_PEER', // hello took the fifth token
      'SIG_RATE_LIMITED',
    ]);
    expect(await ingress.next('leave')).toEqual({ type: 'leave', id: welcome.id, reason: 'SIG_RATE_LIMITED' });
  });

  it('counts pings against the rate limit', async () => {
    const { ws } = await start({ rateLimit: { perSecond: 1, burst: 3 } });
    const host = await connect(ws, 'host');
    for (let i = 0; i < 10; i += 1) host.socket.ping();
    expect(await host.closeEvent()).toEqual({ code: 1008, reason: 'SIG_RATE_LIMITED' });
  });

  it.each([
    ['bad JSON', '{"type":"hello",'],
    ['an array', '[]'],
    ['an unknown type', '{"type":"welcome"}'],
    ['a signal before hello', '{"type":"signal","to":"x","data":1}'],
  ])('closes a connection that sends %s with SIG_BAD_MESSAGE and 1008', async (_label, frame) => {
    const { ws } = await start();
    const host = await connect(ws, 'host');
    host.send(frame);
    expect(await host.next('error')).toMatchObject({ code: 'SIG_BAD_MESSAGE' });
    expect(await host.closeEvent()).toEqual({ code: 1008, reason: 'SIG_BAD_MESSAGE' });
  });

  it('closes a connection that sends a binary frame or a second hello', async () => {
    const { ws } = await start();
    const [binary] = await join(ws, 'host');
    binary.socket.send(Buffer.from('{"type":"signal","to":"x","data":1}'));
    expect(await binary.closeEvent()).toEqual({ code: 1008, reason: 'SIG_BAD_MESSAGE' });
    const [twice] = await join(ws, 'host');
    twice.send({ type: 'hello', info: {} });
    expect(await twice.closeEvent()).toEqual({ code: 1008, reason: 'SIG_BAD_MESSAGE' });
  });

  it('closes a connection that sends no hello in time with SIG_HELLO_TIMEOUT', async () => {
    const { ws } = await start({ helloTimeoutMs: 100 });
    const host = await connect(ws, 'host');
    expect(await host.next('error')).toMatchObject({ code: 'SIG_HELLO_TIMEOUT' });
    expect(await host.closeEvent()).toEqual({ code: 1008, reason: 'SIG_HELLO_TIMEOUT' });
  });

  it('terminates a peer that stops answering pings and announces heartbeat-timeout', async () => {
    const { ws } = await start({ heartbeatIntervalMs: 50 });
    const [ingress] = await join(ws, 'ingress');
    const mute = await connect(ws, 'host', { autoPong: false });
    mute.send({ type: 'hello', info: {} });
    const { id } = await mute.next('welcome');
    const [healthy] = await join(ws, 'host');
    expect(await ingress.next('leave', 2000)).toEqual({ type: 'leave', id, reason: 'heartbeat-timeout' });
    expect((await mute.closeEvent()).code).toBe(1006);
    // The healthy host has lived through several intervals by now and is still listed.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(healthy.socket.readyState).toBe(WebSocket.OPEN);
    expect(server!.peers().map((peer) => peer.role).sort()).toEqual(['host', 'ingress']);
  });

  it('terminates a peer that stops reading instead of buffering for it without bound', async () => {
    const { ws } = await start({ maxBufferedBytes: 256 * 1024, rateLimit: { perSecond: 1, burst: 10_000 }, signalRateLimits: { other: { perSecond: 1, burst: 10_000 } } });
    const [host] = await join(ws, 'host');
    const [reader, readerWelcome] = await join(ws, 'ingress');
    reader.socket.pause();
    const chunk = 'x'.repeat(60_000);
    for (let i = 0; i < 400 && host.socket.readyState === WebSocket.OPEN; i += 1) {
      host.send({ type: 'signal', to: readerWelcome.id, data: chunk });
    }
    expect(await host.next('leave', 5000)).toEqual({ type: 'leave', id: readerWelcome.id, reason: 'slow-consumer' });
  });
});

describe('lifecycle', () => {
  it('closes every peer with 1001 when the server closes', async () => {
    const { ws } = await start();
    const [host] = await join(ws, 'host');
    const pending = await connect(ws, 'ingress');
    await server!.close();
    expect(await host.closeEvent()).toEqual({ code: 1001, reason: 'shutdown' });
    expect((await pending.closeEvent()).code).toBe(1001);
  });

  it('logs joins and leaves with their reasons and never logs a token', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const { ws } = await start({ logger: { level: 'info', stream }, helloTimeoutMs: 100 });
    const hostToken = token('host', 'logged-sub');
    const host = await RawPeer.connect(ws, hostToken);
    peers.push(host);
    host.send({ type: 'hello', info: {} });
    await host.next('welcome');
    host.socket.close(1000);
    await host.closeEvent();
    const silent = await connect(ws, 'ingress');
    await silent.closeEvent();
    await server!.close();
    const records = lines.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toContainEqual(expect.objectContaining({ level: 30, msg: 'peer joined', role: 'host', sub: 'logged-sub' }));
    expect(records).toContainEqual(expect.objectContaining({ level: 30, msg: 'peer left', reason: 'closed', code: 1000 }));
    expect(records).toContainEqual(expect.objectContaining({ msg: 'connection closed before hello', reason: 'SIG_HELLO_TIMEOUT' }));
    expect(lines.join('')).not.toContain(hostToken.split('.')[2]);
    expect(lines.join('')).toContain('token=[redacted]');
  });

  it('serves routes added through the routes option', async () => {
    const { http } = await start({
      routes: (app) => {
        app.get('/host.html', async (_request, reply) => reply.type('text/html').send('<p>host</p>'));
      },
    });
    const response = await fetch(`${http}/host.html`);
    expect([response.status, await response.text()]).toEqual([200, '<p>host</p>']);
  });

  it('rejects a short secret and nonsensical limits at construction', () => {
    expect(() => createSignalingServer({ secret: 'short' })).toThrow(TypeError);
    expect(() => createSignalingServer({ secret: SECRET, maxMessageBytes: 0 })).toThrow(RangeError);
    expect(() => createSignalingServer({ secret: SECRET, rateLimit: { perSecond: -1 } })).toThrow(RangeError);
  });
});

describe('ICE servers', () => {
  const TURN_SECRET = 'coturn-static-auth-secret';
  const ice = { stun: ['stun:127.0.0.1:3478'], turn: ['turn:127.0.0.1:3478?transport=udp'], turnSecret: TURN_SECRET, turnTtlSeconds: 600 };

  afterEach(() => {
    vi.useRealTimers();
  });

  it('welcomes every peer, host and ingress, with TURN credentials minted for its own connection', async () => {
    const { ws } = await start({ ice });
    const [, hostWelcome] = await join(ws, 'host');
    const [, ingressWelcome] = await join(ws, 'ingress');
    for (const welcome of [hostWelcome, ingressWelcome]) {
      const [stun, turn] = welcome.iceServers ?? [];
      expect(stun).toEqual({ urls: ice.stun });
      expect(turn?.urls).toEqual(ice.turn);
      const [expiry, id] = (turn?.username ?? '').split(':');
      expect(id).toBe(welcome.id);
      expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(590);
      expect(turn?.credential).toBe(createHmac('sha1', TURN_SECRET).update(turn?.username ?? '').digest('base64'));
    }
  });

  it('sends no iceServers when none are configured', async () => {
    const { ws } = await start();
    const [, welcome] = await join(ws, 'host');
    expect(Object.hasOwn(welcome, 'iceServers')).toBe(false);
  });

  it('sends fresh credentials in an ice message once half their lifetime has passed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { ws } = await start({ ice, heartbeatIntervalMs: 20 });
    const [peer, welcome] = await join(ws, 'host');
    vi.setSystemTime(Date.now() + 301_000);
    const refresh = await peer.next('ice');
    const username = refresh.iceServers[1]?.username ?? '';
    expect(username).not.toBe(welcome.iceServers?.[1]?.username);
    expect(username.endsWith(`:${welcome.id}`)).toBe(true);
    expect(Number(username.split(':')[0]) - Date.now() / 1000).toBeGreaterThan(590);
  });

  it('refuses TURN without a secret at construction, naming the options', () => {
    expect(() => createSignalingServer({ secret: SECRET, ice: { turn: ['turn:127.0.0.1'] } })).toThrow(expect.objectContaining({ code: 'SIG_BAD_OPTION', message: expect.stringMatching(/`turn` needs `turnSecret`/) }));
  });
});
