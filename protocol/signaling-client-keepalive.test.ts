import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KEEPALIVE_IDLE_MS, KEEPALIVE_TIMEOUT_MS, SignalingClient, type WebSocketLike, type WebSocketLikeEventMap } from './signaling-client.ts';
import type { PeerInfo } from './signaling-messages.ts';

/** An in-memory WebSocket: the test plays the server by calling `receive`, `open` and `drop`. */
class FakeSocket implements WebSocketLike {
  static made: FakeSocket[] = [];
  readyState = 0;
  readonly sent: unknown[] = [];
  closedWith: number | null = null;
  terminated = false;
  readonly #listeners = new Map<string, Array<(event: never) => void>>();

  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(code = 1005): void {
    this.closedWith = code;
  }

  /** Like ws's: destroys the socket without a closing handshake. */
  terminate(): void {
    this.terminated = true;
  }

  addEventListener<K extends keyof WebSocketLikeEventMap>(type: K, listener: (event: WebSocketLikeEventMap[K]) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener as (event: never) => void]);
  }

  open(): void {
    this.readyState = 1;
    this.#emit('open', {});
  }

  receive(message: object): void {
    this.#emit('message', { data: JSON.stringify(message) });
  }

  drop(): void {
    this.readyState = 3;
    this.#emit('close', { code: 1006, reason: '' });
  }

  types(): string[] {
    return this.sent.map((m) => (m as { type: string }).type);
  }

  #emit(type: string, event: unknown): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event as never);
  }
}

const host = (id: string): PeerInfo => ({ id, role: 'ingress', info: {}, since: 0 });

function client(options: { keepaliveIdleMs?: number; keepaliveTimeoutMs?: number } = {}) {
  const c = new SignalingClient({ url: 'ws://signal.test/v1/signal', token: 't', WebSocketImpl: FakeSocket, backoff: { initialMs: 100, jitter: 0 }, ...options });
  const errors: string[] = [];
  c.onerror = (code) => errors.push(code);
  return { c, errors };
}

/** Starts the client and lets the fake server open and welcome its socket. */
async function welcomed(c: SignalingClient): Promise<FakeSocket> {
  const before = FakeSocket.made.length;
  c.start();
  await vi.advanceTimersByTimeAsync(0); // the token is awaited before the socket is made
  const socket = FakeSocket.made[before]!;
  socket.open();
  socket.receive({ type: 'welcome', id: 'me', role: 'host', peers: [] });
  return socket;
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.made = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe('SignalingClient keepalive', () => {
  it('defaults to a ping after 10 s of silence and giving up after 20 s', () => {
    expect([KEEPALIVE_IDLE_MS, KEEPALIVE_TIMEOUT_MS]).toEqual([10_000, 20_000]);
  });

  it('sends a ping after keepaliveIdleMs without a message from the server', async () => {
    const { c } = client();
    const socket = await welcomed(c);
    await vi.advanceTimersByTimeAsync(KEEPALIVE_IDLE_MS - 1);
    expect(socket.types()).toEqual(['hello']);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.types()).toEqual(['hello', 'ping']);
    c.close();
  });

  it('sends no ping while the server keeps talking, since any message counts', async () => {
    const { c } = client();
    const socket = await welcomed(c);
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(KEEPALIVE_IDLE_MS / 2);
      socket.receive({ type: 'join', peer: host(`i${i}`) });
    }
    expect(socket.types()).toEqual(['hello']);
    c.close();
  });

  it('stays connected when the server answers each ping with a pong', async () => {
    const { c, errors } = client();
    const socket = await welcomed(c);
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(KEEPALIVE_IDLE_MS);
      expect(socket.types().at(-1)).toBe('ping');
      socket.receive({ type: 'pong' });
    }
    expect(socket.types().filter((t) => t === 'ping')).toHaveLength(5);
    expect(c.connected).toBe(true);
    expect(errors).toEqual([]);
    expect(FakeSocket.made).toHaveLength(1);
    c.close();
  });

  it('drops a silent connection after keepaliveTimeoutMs, reports SIG_KEEPALIVE_TIMEOUT and reconnects', async () => {
    const { c, errors } = client();
    const states: string[] = [];
    c.onstatechange = (state) => states.push(state);
    const socket = await welcomed(c);
    await vi.advanceTimersByTimeAsync(KEEPALIVE_TIMEOUT_MS - 1);
    expect(c.connected).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.terminated).toBe(true);
    expect(c.connected).toBe(false);
    expect(errors).toEqual(['SIG_KEEPALIVE_TIMEOUT']);
    expect(states.at(-1)).toBe('closed');
    // The abandoned socket's late close event changes nothing; the back-off timer reconnects.
    socket.drop();
    await vi.advanceTimersByTimeAsync(100);
    expect(FakeSocket.made).toHaveLength(2);
    expect(states.at(-1)).toBe('connecting');
    c.close();
  });

  it('closes with the private keepalive code where the socket cannot be terminated (browsers)', async () => {
    const { c } = client({ keepaliveIdleMs: 1000, keepaliveTimeoutMs: 3000 });
    const socket = await welcomed(c);
    Object.defineProperty(socket, 'terminate', { value: undefined });
    await vi.advanceTimersByTimeAsync(3000);
    expect(socket.closedWith).toBe(4000);
  });

  it('gives up on a server that accepts the socket but never welcomes', async () => {
    const { c, errors } = client({ keepaliveIdleMs: 1000, keepaliveTimeoutMs: 3000 });
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeSocket.made[0]!.open();
    await vi.advanceTimersByTimeAsync(3000);
    expect(errors).toEqual(['SIG_KEEPALIVE_TIMEOUT']);
    c.close();
  });

  it('keeps no timer once closed', async () => {
    const { c } = client();
    await welcomed(c);
    c.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('is off with keepaliveIdleMs 0', async () => {
    const { c } = client({ keepaliveIdleMs: 0 });
    const socket = await welcomed(c);
    await vi.advanceTimersByTimeAsync(10 * KEEPALIVE_TIMEOUT_MS);
    expect(socket.types()).toEqual(['hello']);
    expect(c.connected).toBe(true);
    c.close();
  });
});

describe('SignalingClient peer lists', () => {
  it('collects a welcome with more and its peers chunks into one list, delivered on done', async () => {
    const { c } = client();
    const lists: string[][] = [];
    c.onpeers = (peers) => lists.push(peers.map((p) => p.id));
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const socket = FakeSocket.made[0]!;
    socket.open();
    socket.receive({ type: 'welcome', id: 'me', role: 'host', peers: [host('a'), host('b')], more: true });
    socket.receive({ type: 'peers', peers: [host('c')], done: false });
    expect(lists).toEqual([]);
    socket.receive({ type: 'peers', peers: [host('d')], done: true });
    expect(lists).toEqual([['a', 'b', 'c', 'd']]);
    c.close();
  });

  it('takes peers chunks without a welcome (a resync) as a fresh list', async () => {
    const { c } = client();
    const lists: string[][] = [];
    c.onpeers = (peers) => lists.push(peers.map((p) => p.id));
    const socket = await welcomed(c);
    socket.receive({ type: 'peers', peers: [host('x')], done: false });
    socket.receive({ type: 'peers', peers: [host('y')], done: true });
    socket.receive({ type: 'peers', peers: [], done: true });
    expect(lists).toEqual([['x', 'y'], []]);
    c.close();
  });

  it('forgets a half-received list when the connection drops', async () => {
    const { c } = client();
    const lists: string[][] = [];
    c.onpeers = (peers) => lists.push(peers.map((p) => p.id));
    c.start();
    await vi.advanceTimersByTimeAsync(0);
    const first = FakeSocket.made[0]!;
    first.open();
    first.receive({ type: 'welcome', id: 'me', role: 'host', peers: [host('old')], more: true });
    first.drop();
    await vi.advanceTimersByTimeAsync(100);
    const second = FakeSocket.made[1]!;
    second.open();
    second.receive({ type: 'welcome', id: 'me2', role: 'host', peers: [host('new')], more: true });
    second.receive({ type: 'peers', peers: [], done: true });
    expect(lists).toEqual([['new']]);
    c.close();
  });
});
