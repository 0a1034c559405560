import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignalingClient, type SignalingClientOptions, type SignalingClientState, type WebSocketConstructorLike } from '../protocol/index.ts';
import type { PeerInfo, WelcomeMessage } from '../protocol/index.ts';
import { createSignalingServer, type SignalingServer } from './server.ts';
import { mintToken, type Role } from './token.ts';

const SECRET = 'client-test-secret-0123456789';
const FAST_BACKOFF = { initialMs: 20, maxMs: 200, factor: 2, jitter: 0 };

const servers: SignalingServer[] = [];
const clients: SignalingClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function startServer(port = 0, maxMessageBytes?: number): Promise<{ server: SignalingServer; url: string; port: number }> {
  const server = createSignalingServer(maxMessageBytes === undefined ? { secret: SECRET } : { secret: SECRET, maxMessageBytes });
  servers.push(server);
  const http = await server.listen(port);
  return { server, url: `${http.replace(/^http/, 'ws')}/v1/signal`, port: Number(new URL(http).port) };
}

/** A ws WebSocket constructor that counts connection attempts. */
function countingWebSocket(): { WebSocketImpl: WebSocketConstructorLike; attempts: () => number } {
  let attempts = 0;
  class Counting extends WebSocket {
    constructor(url: string) {
      super(url);
      attempts += 1;
    }
  }
  return { WebSocketImpl: Counting, attempts: () => attempts };
}

/** A client with its events recorded, for asserting on. */
function recordedClient(options: Partial<SignalingClientOptions> & { url: string; role?: Role }) {
  const { role = 'host', ...rest } = options;
  const client = new SignalingClient({
    token: mintToken(SECRET, { role, ttlSeconds: 60 }),
    WebSocketImpl: WebSocket,
    backoff: FAST_BACKOFF,
    ...rest,
  });
  clients.push(client);
  const welcomes: WelcomeMessage[] = [];
  const joins: PeerInfo[] = [];
  const states: SignalingClientState[] = [];
  const signals: Array<[string, unknown]> = [];
  const errors: Array<[string, string, string | undefined]> = [];
  client.onwelcome = (message) => welcomes.push(message);
  client.onjoin = (peer) => joins.push(peer);
  client.onstatechange = (state) => states.push(state);
  client.onsignal = (from, data) => signals.push([from, data]);
  client.onerror = (code, message, to) => errors.push([code, message, to]);
  return { client, welcomes, joins, states, signals, errors };
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${condition.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('SignalingClient', () => {
  it('connects, says hello and reports the welcome', async () => {
    const { url } = await startServer();
    const host = recordedClient({ url, info: { name: 'tab-1' } });
    expect(host.client.connected).toBe(false);
    expect(host.client.send('anyone', {})).toBe(false);
    host.client.start();
    await until(() => host.welcomes.length === 1);
    expect(host.client.connected).toBe(true);
    expect(host.client.id).toBe(host.welcomes[0]!.id);
    expect(host.states).toEqual(['connecting', 'open']);

    const ingress = recordedClient({ url, role: 'ingress' });
    ingress.client.start();
    await until(() => ingress.welcomes.length === 1);
    expect(ingress.welcomes[0]!.peers).toEqual([expect.objectContaining({ id: host.client.id, info: { name: 'tab-1' } })]);
  });

  it('exchanges signals between a host and an ingress', async () => {
    const { url } = await startServer();
    const host = recordedClient({ url });
    const ingress = recordedClient({ url, role: 'ingress' });
    host.client.start();
    ingress.client.start();
    await until(() => host.client.connected && ingress.client.connected);
    await until(() => ingress.welcomes[0]!.peers.length + ingress.joins.length === 1);
    expect(ingress.client.send(host.client.id!, { sdp: 'offer' })).toBe(true);
    await until(() => host.signals.length === 1);
    expect(host.signals[0]).toEqual([ingress.client.id, { sdp: 'offer' }]);
    expect(host.client.send(ingress.client.id!, { sdp: 'answer' })).toBe(true);
    await until(() => ingress.signals.length === 1);
    expect(ingress.signals[0]).toEqual([host.client.id, { sdp: 'answer' }]);
  });

  it('reports SIG_UNKNOWN_PEER through onerror with the target id', async () => {
    const { url } = await startServer();
    const host = recordedClient({ url });
    host.client.start();
    await until(() => host.client.connected);
    host.client.send('gone', {});
    await until(() => host.errors.length === 1);
    expect(host.errors[0]).toEqual(['SIG_UNKNOWN_PEER', expect.any(String), 'gone']);
  });

  it('throws SIG_MESSAGE_TOO_LARGE instead of sending an oversized signal', async () => {
    const { url } = await startServer();
    const host = recordedClient({ url, maxMessageBytes: 1024 });
    host.client.start();
    await until(() => host.client.connected);
    expect(() => host.client.send('x', 'a'.repeat(2000))).toThrow(expect.objectContaining({ code: 'SIG_MESSAGE_TOO_LARGE' }));
    expect(host.client.connected).toBe(true);
  });

  it('reconnects with back-off after the server restarts on the same port and gets a fresh welcome', async () => {
    const first = await startServer();
    const counting = countingWebSocket();
    const host = recordedClient({ url: first.url, WebSocketImpl: counting.WebSocketImpl, info: { name: 'h' } });
    const ingress = recordedClient({ url: first.url, role: 'ingress' });
    host.client.start();
    ingress.client.start();
    await until(() => host.client.connected && ingress.client.connected);
    const firstId = host.client.id;

    await first.server.close();
    await until(() => !host.client.connected && !ingress.client.connected);
    expect(host.states).toContain('closed');
    const attemptsBefore = counting.attempts();
    // Down for 700 ms: with 20 ms doubling to a 200 ms cap that is about 6 attempts; without
    // back-off it would be dozens.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const attemptsWhileDown = counting.attempts() - attemptsBefore;
    expect(attemptsWhileDown).toBeGreaterThanOrEqual(3);
    expect(attemptsWhileDown).toBeLessThanOrEqual(8);

    await startServer(first.port);
    await until(() => host.welcomes.length === 2 && ingress.welcomes.length === 2);
    expect(host.client.id).not.toBe(firstId);
    expect(host.client.state).toBe('open');
    // The ingress learns of the host from its new welcome or a join, never from stale state.
    await until(() => [...ingress.welcomes[1]!.peers, ...ingress.joins].some((peer) => peer.id === host.client.id));
  });

  it('keeps retrying after an auth refusal and asks the token function for a fresh token each time', async () => {
    const { url } = await startServer();
    let calls = 0;
    const host = recordedClient({
      url,
      token: () => {
        calls += 1;
        // The first two attempts carry an expired token, as after a long sleep.
        const now = Math.floor(Date.now() / 1000) - (calls <= 2 ? 3600 : 0);
        return mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, now);
      },
    });
    host.client.start();
    await until(() => host.client.connected);
    expect(calls).toBe(3);
    expect(host.states).toEqual(['connecting', 'closed', 'connecting', 'closed', 'connecting', 'open']);
  });

  it('resets its back-off after a successful welcome', async () => {
    const first = await startServer();
    let calls = 0;
    const host = recordedClient({
      url: first.url,
      // Two refusals would push the next delay to 20 * 10^2 = 2 s if a welcome did not reset it.
      backoff: { initialMs: 20, maxMs: 60_000, factor: 10, jitter: 0 },
      token: () => {
        calls += 1;
        const now = Math.floor(Date.now() / 1000) - (calls <= 2 ? 3600 : 0);
        return mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, now);
      },
    });
    host.client.start();
    await until(() => host.client.connected);
    await first.server.close();
    await startServer(first.port);
    await until(() => host.welcomes.length === 2, 1000);
  });

  it('reports SIG_MESSAGE_TOO_LARGE when the server closes with 1009, then reconnects', async () => {
    const { url } = await startServer(0, 1024);
    const host = recordedClient({ url, maxMessageBytes: 1_000_000 });
    host.client.start();
    await until(() => host.client.connected);
    expect(host.client.send('x', 'a'.repeat(2000))).toBe(true);
    await until(() => host.errors.length === 1);
    expect(host.errors[0]).toEqual(['SIG_MESSAGE_TOO_LARGE', expect.any(String), undefined]);
    await until(() => host.welcomes.length === 2);
  });

  it('stops reconnecting after close()', async () => {
    const { url, server } = await startServer();
    const counting = countingWebSocket();
    const host = recordedClient({ url, WebSocketImpl: counting.WebSocketImpl });
    host.client.start();
    await until(() => host.client.connected);
    host.client.close();
    expect(host.client.state).toBe('closed');
    expect(host.client.connected).toBe(false);
    await until(() => server.peers().length === 0);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(counting.attempts()).toBe(1);
  });

  it('refuses to start without a WebSocket implementation', () => {
    const original = (globalThis as { WebSocket?: unknown }).WebSocket;
    (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
    try {
      expect(() => new SignalingClient({ url: 'ws://127.0.0.1:1/v1/signal', token: 't' })).toThrow(TypeError);
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = original;
    }
  });
});
