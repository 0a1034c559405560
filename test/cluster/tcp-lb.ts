/**
 * The TCP load balancer operators put in front of signaling nodes, for the cluster tests: every
 * host and ingress dials it, so a dead node's clients reconnect to a live one (SCALE-OUT §4.2).
 * A connection goes to the next upstream in turn (`round-robin`) or to the first in the list that
 * takes it (`first`: a fixed home with fail-over, which keeps a test's placement deterministic);
 * an upstream that refuses the connection, or fails its health probe, is skipped.
 *
 * The health probe matters for a frozen node (SIGSTOP): its kernel still accepts connections, so
 * only an application-level probe (like any real LB's) tells it is gone.
 */
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join, Path, type Endpoint } from './delay-proxy.ts';

export interface TcpLbOptions {
  upstreams: Endpoint[];
  policy?: 'round-robin' | 'first';
  /** Default 127.0.0.1, port 0. */
  listen?: Partial<Endpoint>;
  /** How long a connect to one upstream may take before the next is tried. Default 1000 ms. */
  connectTimeoutMs?: number;
  /** HTTP GET probe of each upstream (e.g. `/v1/health`); a failing one is skipped until it passes. Off by default. */
  probe?: { path: string; intervalMs?: number; timeoutMs?: number };
}

export interface TcpLb {
  readonly address: Endpoint;
  /** `http://HOST:PORT`. */
  readonly url: string;
  /** Upstream index each accepted connection went to, in order (for tests of the LB itself). */
  readonly routed: number[];
  /** Upstreams whose last probe failed (indices). */
  readonly unhealthy: ReadonlySet<number>;
  close(): Promise<void>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
const DEFAULT_PROBE_INTERVAL_MS = 500;
const DEFAULT_PROBE_TIMEOUT_MS = 1000;

export async function startTcpLb(options: TcpLbOptions): Promise<TcpLb> {
  const { upstreams } = options;
  const policy = options.policy ?? 'round-robin';
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const path = new Path(0);
  const sockets = new Set<Socket>();
  const routed: number[] = [];
  const unhealthy = new Set<number>();
  let next = 0;

  const tryConnect = (index: number): Promise<Socket | null> =>
    new Promise((resolve) => {
      const u = upstreams[index]!;
      const s = connect(u.port, u.host);
      const timer = setTimeout(() => fail(), connectTimeoutMs);
      const fail = () => {
        clearTimeout(timer);
        s.destroy();
        resolve(null);
      };
      s.once('error', fail);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeListener('error', fail);
        resolve(s);
      });
    });

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    void (async () => {
      const start = policy === 'first' ? 0 : next++ % upstreams.length;
      const order = upstreams.map((_, i) => (start + i) % upstreams.length);
      // Healthy ones first; unhealthy ones only if nothing else takes the connection.
      for (const index of [...order.filter((i) => !unhealthy.has(i)), ...order.filter((i) => unhealthy.has(i))]) {
        if (client.destroyed) return;
        const upstream = await tryConnect(index);
        if (!upstream) continue;
        if (client.destroyed) return void upstream.destroy();
        routed.push(index);
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        join(client, upstream, path);
        client.resume();
        return;
      }
      client.destroy();
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen?.port ?? 0, options.listen?.host ?? '127.0.0.1', () => resolve());
  });

  let probeTimer: ReturnType<typeof setInterval> | null = null;
  if (options.probe) {
    const { path: probePath, intervalMs = DEFAULT_PROBE_INTERVAL_MS, timeoutMs = DEFAULT_PROBE_TIMEOUT_MS } = options.probe;
    const probe = (index: number) => {
      const u = upstreams[index]!;
      const req = request({ host: u.host, port: u.port, path: probePath, timeout: timeoutMs, agent: false }, (res) => {
        res.resume();
        // A node that answers at all is alive; 503 `starting` is not ready for clients yet.
        if (res.statusCode === 200) unhealthy.delete(index);
        else unhealthy.add(index);
      });
      req.on('timeout', () => req.destroy(new Error('probe timeout')));
      req.on('error', () => unhealthy.add(index));
      req.end();
    };
    probeTimer = setInterval(() => upstreams.forEach((_, i) => probe(i)), intervalMs);
    probeTimer.unref();
  }

  const { address, port } = server.address() as AddressInfo;
  return {
    address: { host: address, port },
    url: `http://${address}:${port}`,
    routed,
    unhealthy,
    async close() {
      if (probeTimer) clearInterval(probeTimer);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
