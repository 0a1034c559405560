import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startSignal, type StartedSignal } from '../node/index.ts';
import { SignalingClient } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';

const SECRET = 'keepalive-test-secret-0123456789';
/** Short keepalive timings so the test runs in about a second; the defaults are 10 s / 20 s. */
const KEEPALIVE = { keepaliveIdleMs: 300, keepaliveTimeoutMs: 1000 };

/**
 * A TCP proxy in front of signaling that can freeze: the connections it carries stop forwarding
 * in both directions without a FIN or RST, as when the server's machine hangs or a network path
 * silently drops everything. Connections made after a freeze are forwarded (the client's
 * reconnect reaches a live server, as it would reach another node).
 */
class FreezableProxy {
  readonly #server: Server;
  readonly #pairs: Array<[Socket, Socket]> = [];
  /** Connections accepted so far. */
  accepted = 0;
  /** `pong` messages seen going to the client. */
  pongs = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(target: number): Promise<FreezableProxy> {
    const server = createServer();
    const proxy = new FreezableProxy(server);
    server.on('connection', (client) => {
      proxy.accepted += 1;
      const upstream = createConnection({ host: '127.0.0.1', port: target });
      proxy.#pairs.push([client, upstream]);
      // Server frames are unmasked (RFC 6455 §5.1), so the JSON is readable on the wire.
      upstream.on('data', (chunk: Buffer) => (proxy.pongs += chunk.toString('latin1').split('"type":"pong"').length - 1));
      client.pipe(upstream);
      upstream.pipe(client);
      for (const s of [client, upstream]) s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Stops forwarding on every open connection, sending nothing: no FIN, no RST. */
  freeze(): void {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  async close(): Promise<void> {
    for (const pair of this.#pairs) for (const s of pair) s.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let signal: StartedSignal | undefined;
let proxy: FreezableProxy | undefined;
let client: SignalingClient | undefined;

afterEach(async () => {
  client?.close();
  await proxy?.close();
  await signal?.server.close();
  signal = proxy = client = undefined;
});

async function setUp() {
  signal = await startSignal({ secret: SECRET, port: 0, host: '127.0.0.1', log: () => {} });
  proxy = await FreezableProxy.start(Number(new URL(signal.url).port));
  client = new SignalingClient({
    url: `ws://127.0.0.1:${proxy.port}/v1/signal`,
    token: mintToken(SECRET, { role: 'ingress', ttlSeconds: 60 }),
    info: { name: 'keepalive-test' },
    WebSocketImpl: WebSocket,
    backoff: { initialMs: 50, jitter: 0 },
    ...KEEPALIVE,
  });
  const welcomes: string[] = [];
  const errors: string[] = [];
  client.onwelcome = (m) => welcomes.push(m.id);
  client.onerror = (code) => errors.push(code);
  client.start();
  await until(() => welcomes.length === 1, 'the first welcome');
  return { welcomes, errors, proxy };
}

describe('signaling client keepalive against a real signaling server', () => {
  it('pings a quiet but live server, gets pongs and stays on its connection', async () => {
    const { welcomes, errors, proxy } = await setUp();
    await until(() => proxy.pongs >= 3, 'three pongs');
    expect(welcomes).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(proxy.accepted).toBe(1);
  });

  it('leaves a frozen server (no FIN) after keepaliveTimeoutMs and is welcomed again on a new connection', async () => {
    const { welcomes, errors, proxy } = await setUp();
    proxy.freeze();
    await until(() => welcomes.length === 2, 'a welcome on a new connection');
    expect(errors).toEqual(['SIG_KEEPALIVE_TIMEOUT']);
    expect(proxy.accepted).toBe(2);
    expect(welcomes[1]).not.toBe(welcomes[0]);
  });
});
