/**
 * How the test process (in the root network namespace) reaches addresses inside a test
 * namespace: a small relay started inside the namespace listens on a unix socket (a file, which
 * every namespace sees), reads one line `HOST:PORT` from each connection, and relays the rest to
 * that address from inside. {@link NsReach} turns that into an `http.Agent` and a socket factory
 * for `ws`, so health checks, control calls and load run from the test process unchanged.
 *
 * Run as a program inside the namespace: `ip netns exec NS node --import tsx ns-gateway.ts SOCKET`;
 * it prints `listening SOCKET` when ready.
 */
import { Agent, type AgentOptions } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Longest `HOST:PORT` line a gateway accepts. */
const MAX_LINE = 300;

/** A socket to HOST:PORT as seen from inside the namespace whose gateway listens on `socketPath`. */
export function connectVia(socketPath: string, host: string, port: number): Socket {
  const s = connect(socketPath);
  s.write(`${host}:${port}\n`);
  return s;
}

/** Reaches addresses inside one namespace (or, with no gateway, directly from here). */
export class NsReach {
  readonly agent: Agent;
  /**
   * No keep-alive by default: a reused idle socket that the server closes at the same moment
   * fails with ECONNRESET before any byte was answered, an artefact of the client that real
   * clients retry; a fresh connection per request keeps the load's failures the cluster's own.
   */
  constructor(readonly socketPath: string | null, options: AgentOptions = { keepAlive: false, maxSockets: 256 }) {
    const path = socketPath;
    this.agent = path === null ? new Agent(options) : new (class extends Agent {
      override createConnection(opts: { host?: string; port?: number }, _cb?: unknown): Socket {
        return connectVia(path, opts.host ?? '127.0.0.1', Number(opts.port ?? 80));
      }
    })(options);
  }
  /** A `createConnection` for `ws` (`new WebSocket(url, { createConnection })`). */
  createConnection = (opts: { host?: string; hostname?: string; port?: number | string }): Socket =>
    this.socketPath === null ? connect(Number(opts.port), opts.hostname ?? opts.host ?? '127.0.0.1') : connectVia(this.socketPath, opts.hostname ?? opts.host ?? '127.0.0.1', Number(opts.port));
  destroy(): void {
    this.agent.destroy();
  }
}

/** The root namespace: plain sockets. */
export const DIRECT = new NsReach(null);

/** Serves the gateway on `socketPath`; returns a close function. */
export async function serveGateway(socketPath: string): Promise<() => Promise<void>> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl === -1) {
        if (head.length > MAX_LINE) client.destroy();
        return;
      }
      client.removeListener('data', onData);
      client.pause();
      const line = head.subarray(0, nl).toString();
      const rest = head.subarray(nl + 1);
      const i = line.lastIndexOf(':');
      const upstream = connect(Number(line.slice(i + 1)), line.slice(0, i));
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      const closeBoth = () => {
        client.destroy();
        upstream.destroy();
      };
      upstream.on('error', closeBoth).on('close', closeBoth);
      client.on('close', closeBoth);
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const socketPath = process.argv[2];
  if (!socketPath) throw new Error('usage: ns-gateway.ts SOCKET_PATH');
  await serveGateway(socketPath);
  console.log(`listening ${socketPath}`);
}
