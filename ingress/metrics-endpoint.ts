/**
 * Where the ingress's metrics are scraped. Every path of the main port but `/_dcdn/*` belongs to
 * the apps, so there the metrics live at `/_dcdn/metrics` and need a bearer token the operator
 * chose (`authorize`: an operator token, a static `--metrics-token`). Operators who would rather
 * protect them by network than by token bind a separate listener (`--metrics-listen`) that
 * serves `/metrics` to whoever can reach it: a private interface, a Prometheus sidecar.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { sendError } from './error-response.ts';

/** How an ingress serves its metrics. */
export interface MetricsEndpointOptions {
  /**
   * Whether the bearer token of a `/_dcdn/metrics` request may read them. Without it, that
   * endpoint answers 401 INGRESS_UNAUTHORIZED to everyone (use `listen`).
   */
  authorize?: (token: string) => boolean;
  /** A separate address serving `GET /metrics` without a token. Port 0 picks one. */
  listen?: { host: string; port: number };
}

/** What can render the exposition text. */
export interface MetricsSource {
  render(): Promise<{ contentType: string; body: string }>;
  /** prom-client's JSON form (`?format=json`), what signaling's dashboard reads. */
  renderJson(): Promise<unknown>;
}

/** The main port's endpoint. */
export const METRICS_PATH = '/_dcdn/metrics';

/** Registers `GET /_dcdn/metrics` on the ingress's own server. */
export function serveMetrics(app: FastifyInstance, metrics: MetricsSource, options: MetricsEndpointOptions): void {
  app.get(METRICS_PATH, async (request, reply) => {
    const header = request.headers.authorization;
    const token = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    if (!options.authorize || token === undefined || !options.authorize(token)) {
      reply.hijack();
      const why = options.authorize ? 'send an operator token (or the --metrics-token) as Authorization: Bearer' : 'this ingress serves metrics to no token: scrape its --metrics-listen address';
      return sendError(reply.raw, 'INGRESS_UNAUTHORIZED', why, { 'www-authenticate': 'Bearer realm="dcdn metrics"' });
    }
    if ((request.query as Record<string, unknown>).format === 'json') return reply.header('cache-control', 'no-store').send(await metrics.renderJson());
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}

/** Starts the separate metrics listener; resolves with its `/metrics` URL and a close(). */
export async function listenMetrics(metrics: MetricsSource, at: { host: string; port: number }): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics is served here\n');
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An `authorize` that accepts one fixed token (`--metrics-token`), compared in constant time. */
export function staticToken(expected: string): (token: string) => boolean {
  const want = Buffer.from(expected);
  return (token) => {
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  };
}
