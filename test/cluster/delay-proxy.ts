/**
 * A user-space TCP proxy that adds latency and can cut the path silently: the "WAN" between the
 * test regions, since this kernel has no netem (SCALE-OUT §4.1). Each chunk read is released
 * `delayMs` after it arrived, in order; reading pauses while too much is queued (backpressure).
 * `cut()` stops forwarding both ways without closing anything (no FIN, no RST): to both ends the
 * path looks partitioned, and what they send meanwhile is delivered after `heal()`, as TCP's
 * retransmissions would. Connections opened during a cut are accepted but not connected onward
 * until the heal (a SYN lost in a partition).
 *
 * Run as a program to put a proxy inside a namespace:
 * `ip netns exec NS node --import tsx test/cluster/delay-proxy.ts LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS`;
 * it prints `listening HOST:PORT` and takes `cut` / `heal` lines on stdin.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

/** Bytes queued in one direction before the reading side is paused. */
export const DELAY_PROXY_HIGH_WATER = 1024 * 1024;

export interface Endpoint {
  host: string;
  port: number;
}

/** How a relay decides when a chunk may go, and whether anything may go at all. */
export interface Shaper {
  readonly delayMs: number;
  readonly isCut: boolean;
  /** Resolves at the next heal (now if not cut). */
  whenHealed(): Promise<void>;
}

/**
 * Relays `from` → `to` through `shaper`: each chunk leaves no earlier than `delayMs` after it came,
 * in order, and not while cut. Ends `to` (FIN) after the queue drains once `from` ended.
 */
export function relay(from: Socket, to: Socket, shaper: Shaper): void {
  const queue: Array<{ chunk: Buffer; at: number }> = [];
  let queued = 0;
  let ended = false;
  let pumping = false;
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (queue.length > 0 || ended) {
        if (shaper.isCut) await shaper.whenHealed();
        if (to.destroyed) return;
        const head = queue[0];
        if (!head) {
          to.end();
          return;
        }
        const wait = head.at - Date.now();
        if (wait > 0) {
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        if (shaper.isCut) continue;
        queue.shift();
        queued -= head.chunk.length;
        if (queued < DELAY_PROXY_HIGH_WATER && from.isPaused()) from.resume();
        if (!to.write(head.chunk)) await new Promise<void>((r) => to.once('drain', () => r()).once('close', () => r()));
      }
    } finally {
      pumping = false;
    }
  };
  from.on('data', (chunk: Buffer) => {
    queue.push({ chunk, at: Date.now() + shaper.delayMs });
    queued += chunk.length;
    if (queued >= DELAY_PROXY_HIGH_WATER) from.pause();
    void pump();
  });
  from.on('end', () => {
    ended = true;
    void pump();
  });
}

/** Joins a client socket to an upstream socket both ways; either closing or failing closes both. */
export function join(client: Socket, upstream: Socket, shaper: Shaper): void {
  relay(client, upstream, shaper);
  relay(upstream, client, shaper);
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth).on('close', closeBoth);
  upstream.on('error', closeBoth).on('close', closeBoth);
}

/** A cuttable, delaying path: the shared state of a proxy's connections. */
export class Path implements Shaper {
  #cut = false;
  #healed: Array<() => void> = [];
  constructor(public delayMs = 0) {}
  get isCut(): boolean {
    return this.#cut;
  }
  whenHealed(): Promise<void> {
    return this.#cut ? new Promise((r) => this.#healed.push(r)) : Promise.resolve();
  }
  cut(): void {
    this.#cut = true;
  }
  heal(): void {
    this.#cut = false;
    for (const r of this.#healed.splice(0)) r();
  }
}

export interface DelayProxy {
  /** Where clients connect. */
  readonly address: Endpoint;
  readonly delayMs: number;
  /** Stops forwarding both ways, silently (no FIN, no RST). */
  cut(): void;
  heal(): void;
  /** Live client connections. */
  readonly connections: number;
  /** Closes the listener and destroys every connection. */
  close(): Promise<void>;
}

export interface DelayProxyOptions {
  target: Endpoint;
  delayMs?: number;
  /** Default 127.0.0.1 and port 0 (any). */
  listen?: Partial<Endpoint>;
}

/** Starts a delaying proxy to `target`. */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const path = new Path(options.delayMs ?? 0);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    void path.whenHealed().then(() => {
      if (client.destroyed) return;
      const upstream = connect(options.target.port, options.target.host);
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      join(client, upstream, path);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen?.port ?? 0, options.listen?.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    address: { host: address, port },
    delayMs: path.delayMs,
    cut: () => path.cut(),
    heal: () => path.heal(),
    get connections() {
      return [...sockets].length;
    },
    async close() {
      path.heal();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function endpoint(text: string): Endpoint {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [listen, target, delay] = process.argv.slice(2);
  if (!listen || !target) throw new Error('usage: delay-proxy.ts LISTEN_HOST:PORT TARGET_HOST:PORT [DELAY_MS]');
  const proxy = await startDelayProxy({ listen: endpoint(listen), target: endpoint(target), delayMs: Number(delay ?? 0) });
  console.log(`listening ${proxy.address.host}:${proxy.address.port}`);
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'cut') proxy.cut();
    if (line.trim() === 'heal') proxy.heal();
    console.log(`ok ${line.trim()}`);
  }).on('close', () => void proxy.close().then(() => process.exit(0)));
}
