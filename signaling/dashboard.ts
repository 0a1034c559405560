/**
 * The operator dashboard: `GET /dashboard?token=OPERATOR` (the page, its charts drawn with
 * uPlot served from `/dashboard/uplot.*`) and `GET /v1/dashboard` (what the page polls).
 *
 * Signaling knows every ingress (each announces its address in its hello) and holds the secret,
 * so it gathers the figures itself: each ingress's metrics (`/_dcdn/metrics?format=json`, with
 * an operator token it mints) and health (`/_dcdn/health`: hosts, transports, RTT, load),
 * summed per app. The page turns successive counter readings into req/s, errors/s and p50/p99
 * from histogram bucket deltas, and opens each ingress's `/_dcdn/tail` for its live log pane.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { SignalingError } from '../protocol/index.ts';
import { bearerToken, sendError } from './http-auth.ts';
import type { PeerInfo } from '../protocol/index.ts';
import type { HostSummary } from './signaling-hub.ts';
import { mintToken, verifyToken } from './token.ts';
import { dashboardHtml } from './dashboard-page.ts';

/** What the dashboard reads from signaling itself. */
export interface DashboardSources {
  secret: string;
  peers(): PeerInfo[];
  hosts(): HostSummary[];
  /** Deployed apps and their live versions; empty without a control plane. */
  apps(): Array<{ name: string; version: number }>;
  /** Which hosts loaded which version of each app. */
  appHosts(): Map<string, Array<{ host: string; version: number; state: string }>>;
}

/** Per app, summed over every ingress. */
export interface AppFigures {
  requests: number;
  errors: number;
  /** Cumulative histogram buckets of request duration: [upper bound in s, count]. */
  buckets: Array<[number, number]>;
}

/** How long one ingress may take to answer the dashboard's two reads. */
const INGRESS_TIMEOUT_MS = 2000;

export function registerDashboard(app: FastifyInstance, sources: DashboardSources): void {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const operator = (request: Parameters<typeof bearerToken>[0]) => verifyToken(sources.secret, bearerToken(request), ['operator']);

  app.get('/dashboard', async (request, reply) => {
    try {
      operator(request);
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      return sendError(reply, err.code, `${err.message}: open /dashboard?token=<operator token> (dcdn token --role operator)`);
    }
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').send(dashboardHtml());
  });
  app.get('/dashboard/uplot.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=3600').send(uplotJs));
  app.get('/dashboard/uplot.css', async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=3600').send(uplotCss));

  app.get('/v1/dashboard', async (request, reply) => {
    try {
      operator(request);
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      return sendError(reply, err.code, err.message);
    }
    const token = mintToken(sources.secret, { role: 'operator', sub: 'dashboard', ttlSeconds: 60 });
    const ingressPeers = sources.peers().filter((p) => p.role === 'ingress' && typeof p.info['wsUrl'] === 'string');
    const ingresses = await Promise.all(ingressPeers.map((p) => readIngress(p, token)));
    const apps: Record<string, AppFigures> = {};
    for (const ing of ingresses) for (const [name, f] of Object.entries(ing.apps)) apps[name] = addFigures(apps[name], f);
    const loaded = sources.appHosts();
    return reply.header('cache-control', 'no-store').send({
      time: Date.now(),
      apps,
      deployed: sources.apps().map((a) => ({ name: a.name, version: a.version, hosts: loaded.get(a.name) ?? [] })),
      ingresses: ingresses.map(({ apps: _apps, ...rest }) => rest),
      hosts: sources.hosts().map((h) => ({ name: h.name, volunteer: h.volunteer, draining: h.draining, userAgent: h.userAgent, cores: h.cores, since: h.since })),
    });
  });
}

interface IngressReading {
  name: string;
  /** The ingress's HTTP base, for the page's tail sockets. */
  url: string;
  ok: boolean;
  error?: string;
  inFlight: number;
  hosts: Array<{ name: string; transport: string; rttMs: number | null; inFlight: number; served: number; penalised: boolean }>;
  apps: Record<string, AppFigures>;
}

async function readIngress(peer: PeerInfo, token: string): Promise<IngressReading> {
  const url = String(peer.info['wsUrl']).replace(/^ws/, 'http').replace(/\/_dcdn\/host-ws$/, '');
  const name = typeof peer.info['name'] === 'string' ? peer.info['name'] : peer.id;
  const reading: IngressReading = { name, url, ok: false, inFlight: 0, hosts: [], apps: {} };
  try {
    const signal = AbortSignal.timeout(INGRESS_TIMEOUT_MS);
    const [metricsRes, healthRes] = await Promise.all([fetch(`${url}/_dcdn/metrics?format=json`, { headers: { authorization: `Bearer ${token}` }, signal }), fetch(`${url}/_dcdn/health`, { signal })]);
    if (!metricsRes.ok) throw new Error(`metrics: ${metricsRes.status} ${metricsRes.headers.get('dcdn-error') ?? ''}`.trim());
    const families = (await metricsRes.json()) as Array<{ name: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> }>;
    const health = (await healthRes.json()) as { inFlight?: number; hosts?: Array<Record<string, unknown>> };
    reading.apps = appFigures(families);
    reading.inFlight = health.inFlight ?? 0;
    reading.hosts = (health.hosts ?? []).map((h) => ({
      name: String(h['name']),
      transport: String(h['transport']),
      rttMs: typeof h['rttMs'] === 'number' ? h['rttMs'] : null,
      inFlight: Number(h['inFlight'] ?? 0),
      served: Number(h['served'] ?? 0),
      penalised: h['penalised'] === true,
    }));
    reading.ok = true;
  } catch (err) {
    reading.error = (err as Error).message;
  }
  return reading;
}

/** Requests, 5xx answers and duration buckets per app, from one ingress's metrics JSON. */
export function appFigures(families: Array<{ name: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> }>): Record<string, AppFigures> {
  const out: Record<string, AppFigures> = {};
  const get = (app: string) => (out[app] ??= { requests: 0, errors: 0, buckets: [] });
  for (const v of families.find((f) => f.name === 'dcdn_http_requests_total')?.values ?? []) {
    const f = get(String(v.labels['app']));
    f.requests += v.value;
    if (String(v.labels['status']).startsWith('5')) f.errors += v.value;
  }
  for (const v of families.find((f) => f.name === 'dcdn_http_request_duration_seconds')?.values ?? []) {
    if (v.metricName !== 'dcdn_http_request_duration_seconds_bucket') continue;
    const le = v.labels['le'] === '+Inf' ? Infinity : Number(v.labels['le']);
    const f = get(String(v.labels['app']));
    const b = f.buckets.find(([bound]) => bound === le);
    if (b) b[1] += v.value;
    else f.buckets.push([le, v.value]);
  }
  for (const f of Object.values(out)) f.buckets.sort((a, b) => a[0] - b[0]);
  return out;
}

function addFigures(a: AppFigures | undefined, b: AppFigures): AppFigures {
  if (!a) return { requests: b.requests, errors: b.errors, buckets: b.buckets.map(([le, n]) => [le, n]) };
  a.requests += b.requests;
  a.errors += b.errors;
  for (const [le, n] of b.buckets) {
    const x = a.buckets.find(([bound]) => bound === le);
    if (x) x[1] += n;
    else a.buckets.push([le, n]);
  }
  a.buckets.sort((x, y) => x[0] - y[0]);
  return a;
}
