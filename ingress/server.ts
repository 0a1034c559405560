import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { createServer, METHODS, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { CACHE_PATH_PREFIX, DcdnError, ERRORS, WS_MAX_MESSAGE_SIZE, type ErrorCode, type SessionOptions } from '../protocol/index.ts';
import { codeForStatus, endLingering, isLingering, rawErrorResponse, sendError } from './error-response.ts';
import { trustedProxyMatcher } from './http-headers.ts';
import { AppRouter, type AppRouterOptions } from './app-router.ts';
import { CONNECTOR_DEFAULTS, HostConnector, type HostConnectorOptions } from './host-connector.ts';
import { DEFAULT_CRON_TIMEOUT_MS, runScheduled } from './cron-runner.ts';
import { HostPool, type HostPoolOptions } from './host-pool.ts';
import { PEER_LOG_INTERVAL_MS, peerLog } from './peer-log.ts';
import { PROXY_DEFAULTS, ProxyRequest, type ProxyOptions } from './proxy.ts';
import { WsGateway, type WsGatewayOptions } from './ws-gateway.ts';
import { offererFactory, type RtcBackend } from './rtc-backend.ts';
import type { OffererOptions } from './rtc-peer.ts';
import { TicketBook } from './ticket-book.ts';
import type { AppRef } from '../protocol/index.ts';
import { KvService } from './kv/service.ts';
import { mayServe } from './host-traits.ts';
import type { KvLimits } from './kv/limits.ts';
import type { KvStore } from './kv/store.ts';
import { SqlService } from './sql/service.ts';
import { registerSqlAdmin } from './sql/admin-route.ts';
import type { SqlLimits } from './sql/limits.ts';
import type { SqlStore } from './sql/store.ts';
import { IngressMetrics, NO_APP, NO_TRANSPORT } from './metrics.ts';
import { listenMetrics, serveMetrics, type MetricsEndpointOptions } from './metrics-endpoint.ts';
import { inheritRequestId, newRequestId, REQUEST_ID_HEADER, traceOf } from './request-id.ts';
import { PEER_HEADER, PeerForwarder, rankPeers, verifyPeerRequest, PEER_FORWARD_DEFAULTS, type PeerForwardOptions } from './peer-forward.ts';
import type { ClusterSummary, PlacementView } from './placement-view.ts';
import type { ProxyCluster } from './proxy.ts';
import { MAX_URL, registerTail, TailHub, type TailEvent, type TailOptions } from './tail.ts';
import { RequestLogBook, type RequestLogOptions } from './request-logs.ts';
import { RequestTiming } from './request-timing.ts';
import { OtlpExporter, type OtlpOptions } from './otlp.ts';
import { CacheApiService, HttpCache, originFetch, registerCacheMetrics, registerCachePurge, type HttpCacheOptions } from './cache/index.ts';

export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Everything an ingress can be told; all but `signalUrl` and `token` have defaults. */
export interface IngressOptions {
  signalUrl: string;
  token: string | (() => string);
  /** Port to listen on (0 picks one). Default 8080. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Name in signaling, logs and health; in a cluster the placement key, unique cluster-wide. Default `ingress`. */
  name?: string;
  /** Cluster mode: this ingress's region; hosts of the same region are placed on it first. Default `default`. */
  region?: string;
  /** Cluster mode: placement weight; twice the weight takes about twice the hosts. Default 1. */
  weight?: number;
  /**
   * Cluster mode: where the peer listener listens, for requests other ingresses forward here
   * (authenticated by `dcdn-peer`). Firewall it to the cluster network. Default: none, and this
   * ingress takes no forwards (it still forwards to peers that have one).
   */
  peerListen?: { host: string; port: number };
  /** The URL peers reach the peer listener at, as advertised in signaling. Default `http://<peerListen>`. */
  peerUrl?: string;
  /**
   * How long a scheduled run (a cron tick signaling asked this ingress to run: the handler and
   * its ctx.waitUntil work) may take before the ingress cancels it and reports CRON_TIMEOUT
   * (`--cron-timeout`). Default 60000 ms.
   */
  cronTimeoutMs?: number;
  /** Cluster mode: a host placed on other ingresses keeps its session this long, then drains. Default 30000 ms. */
  detachGraceMs?: number;
  /** Cluster mode: the longest a detached host's requests in flight get before its session closes. Default 60000 ms. */
  detachDrainMs?: number;
  /** Cluster mode: a host newly placed here is connected after a random delay up to this. Default 500 ms. */
  attachJitterMs?: number;
  /**
   * After its first welcome, how long the ingress waits for signaling's `cluster` message before
   * it attaches every host as a single node's ingress. Default 500 ms.
   */
  clusterWaitMs?: number;
  /** Limits of forwarding to peers (peer-forward.ts). */
  peerForward?: Partial<PeerForwardOptions>;
  /** How hosts are reached: `webrtc` (default) or `websocket`. */
  transport?: 'webrtc' | 'websocket';
  /** Base URL hosts use to dial the WebSocket endpoint. Default `ws://<host>:<port>`. */
  publicWsBase?: string;
  /** A data channel not open after this long falls back to WebSocket. Default 10000 ms. */
  rtcOpenTimeoutMs?: number;
  /** A host that hasn't dialled the WebSocket endpoint after this long is tried again. Default 10000 ms. */
  wsDialTimeoutMs?: number;
  rtc?: OffererOptions;
  /** WebRTC stack for data channels: `werift` (default) or `node-datachannel`. */
  rtcBackend?: RtcBackend;
  session?: Partial<Omit<SessionOptions, 'role'>>;
  pool?: HostPoolOptions;
  proxy?: Partial<Omit<ProxyOptions, 'forwarding' | 'router' | 'webSockets'>>;
  /** WebSockets to handlers: idle timeout, largest message, sockets per host (ws-gateway.ts). */
  webSockets?: Partial<WsGatewayOptions>;
  /** How requests map to apps (hostname, path prefix, default app). */
  routing?: AppRouterOptions;
  /**
   * Addresses or CIDR ranges (`10.0.0.0/8`) of proxies in front of the ingress, whose
   * X-Forwarded-For/-Proto/-Host are believed and appended to. Default none: every client's
   * X-Forwarded-* is replaced with what the socket says.
   */
  trustedProxies?: string[];
  /**
   * Slowloris guard: time allowed to send the request line and headers; past it the client gets
   * 408 INGRESS_REQUEST_TIMEOUT and the connection closes. Checked every
   * min(1000, headersTimeoutMs / 4) ms. Default 20000 ms.
   */
  headersTimeoutMs?: number;
  /** Idle keep-alive connections close after this long. Default 5000 ms. */
  keepAliveTimeoutMs?: number;
  /** On close, time in-flight requests get to finish before they are cut. Default 10000 ms. */
  shutdownGraceMs?: number;
  /**
   * Log lines a host can cause (bad signals, cut responses, penalties) are written once per host
   * and kind per this long, the rest counted (peer-log.ts). 0: every line. Default 10000 ms.
   */
  peerLogIntervalMs?: number;
  /**
   * The store behind handlers' KV bindings (kv/index.ts `openKvStore`). Without one, KV
   * operations fail with KV_NOT_CONFIGURED. The ingress closes it when it closes.
   */
  kv?: KvStore;
  kvLimits?: Partial<KvLimits>;
  /** A KV value stalled by its tab this long fails with KV_TIMEOUT. Default 30000 ms. */
  kvIdleTimeoutMs?: number;
  /**
   * KV operations one host may have open at once (streams it opens); more are refused with
   * PROTO_TOO_MANY_STREAMS. Bounds what one tab can make the ingress buffer. Default 64.
   */
  kvMaxConcurrentPerHost?: number;
  /**
   * The store behind handlers' SQL bindings (sql/index.ts `openSqlStore`). Without one, SQL
   * calls fail with SQL_NOT_CONFIGURED. The ingress closes it when it closes.
   */
  sql?: SqlStore;
  /** Statement timeout, result rows and bytes, statements per call, calls per host (docs/sql.md). */
  sqlLimits?: Partial<SqlLimits>;
  /**
   * The HTTP cache in front of the apps and behind their Cache API (cache/, docs/cache.md):
   * `maxBytes` (`--cache-size`, default 256 MiB, 0 turns it off), `maxEntryBytes`
   * (`--cache-max-entry`, default 8 MiB), `passTtlMs`.
   */
  cache?: Partial<HttpCacheOptions>;
  /**
   * Prometheus metrics (metrics.ts, docs/observability.md): served at `/_dcdn/metrics` to
   * callers `authorize` accepts, and at `/metrics` on `listen` when given. Default: collected,
   * served to nobody until one of the two is set.
   */
  metrics?: MetricsEndpointOptions & { enabled?: boolean; processMetrics?: boolean };
  /**
   * Whether a bearer token is an operator's: what `/_dcdn/tail` (live requests for `dcdn tail`)
   * takes. Without it that endpoint refuses everyone.
   */
  authorizeOperator?: (token: string) => boolean;
  /** Bounds of `/_dcdn/tail` (tail.ts). */
  tail?: TailOptions;
  /** Bounds of the handlers' console output held for tail (request-logs.ts). */
  consoleLogs?: RequestLogOptions;
  /** Export a span per request to an OpenTelemetry collector (otlp.ts, `--otlp URL`). */
  otlp?: OtlpOptions;
  /**
   * Share of requests (0 to 1) timed hop by hop (request-timing.ts, docs/performance.md
   * "Waterfall") for the `dcdn_request_segment_seconds` histogram, besides those timed because
   * a `dcdn tail --timing` is attached. Default 0 (`--timing-sample`).
   */
  timingSampleRate?: number;
  log?: Log;
}

/** A running ingress. */
export interface Ingress {
  readonly app: FastifyInstance;
  readonly pool: HostPool;
  /** `http://host:port`, once listening. */
  readonly url: string;
  /** Requests being forwarded right now. */
  readonly inFlight: number;
  /** Visitors' WebSockets to handlers (ws-gateway.ts). */
  readonly webSockets: WsGateway;
  /** Serves handlers' KV operations, when a store was given. */
  readonly kv: KvService | null;
  /** Serves handlers' SQL calls, when a store was given. */
  readonly sql: SqlService | null;
  /** The HTTP cache (off when its size is 0). */
  readonly cache: HttpCache;
  /** The Prometheus metrics; null with `metrics.enabled: false`. */
  readonly metrics: IngressMetrics | null;
  /** `dcdn tail`'s subscribers. */
  readonly tail: TailHub;
  /** The span exporter, with `otlp`. */
  readonly otlp: OtlpExporter | null;
  /** `http://host:port/metrics` of the separate metrics listener, once listening (`metrics.listen`). */
  readonly metricsUrl: string | null;
  /** `http://host:port` of the peer listener, once listening (`peerListen`). */
  readonly peerUrl: string | null;
  /** The cluster as signaling describes it; null outside a cluster (no `cluster` message yet). */
  readonly cluster: ClusterSummary | null;
  listen(): Promise<string>;
  /** Stops accepting, lets in-flight requests finish within the grace period, then closes. */
  close(): Promise<void>;
}

/**
 * Creates the ingress: a fastify server that forwards every request (except `/_dcdn/*`) to a
 * host, joins signaling to find hosts, and accepts hosts on `/_dcdn/host-ws` for the WebSocket
 * transport.
 *
 * @example
 * ```ts
 * const ingress = createIngress({ signalUrl: 'ws://127.0.0.1:8787/v1/signal', token, port: 8080 });
 * await ingress.listen();
 * ```
 */
export function createIngress(options: IngressOptions): Ingress {
  checkClusterOptions(options);
  const log: Log = options.log ?? (() => {});
  const cronTimeoutMs = options.cronTimeoutMs ?? DEFAULT_CRON_TIMEOUT_MS;
  if (!(cronTimeoutMs > 0 && Number.isFinite(cronTimeoutMs))) throw new RangeError('cronTimeoutMs must be a positive number');
  // What a host can make the ingress say, it may say once per interval (per kind): a hostile
  // host must not be able to fill the log.
  const hostLog = peerLog(log, options.peerLogIntervalMs ?? PEER_LOG_INTERVAL_MS);
  const router = new AppRouter(options.routing);
  const webSockets = new WsGateway(options.webSockets);
  const timingSampleRate = options.timingSampleRate ?? 0;
  if (!(timingSampleRate >= 0 && timingSampleRate <= 1)) throw new RangeError(`timingSampleRate must be in [0, 1], got ${timingSampleRate}`);
  const proxyOpts: ProxyOptions = {
    ...PROXY_DEFAULTS,
    ...options.proxy,
    forwarding: { isTrustedProxy: trustedProxyMatcher(options.trustedProxies ?? []), protocol: 'http' },
    router,
    webSockets,
  };
  // On the peer listener the caller is an ingress of the cluster (its signature checked): its
  // X-Forwarded-* carry the visitor's address and scheme, so they are believed.
  const peerProxyOpts: ProxyOptions = { ...proxyOpts, forwarding: { isTrustedProxy: () => true, protocol: 'http' } };
  const name = options.name ?? 'ingress';
  const peerForwardOpts: PeerForwardOptions = { ...PEER_FORWARD_DEFAULTS, ...options.peerForward };
  const headersTimeout = options.headersTimeoutMs ?? 20_000;
  const pool = new HostPool(options.pool);
  const tickets = new TicketBook();
  const inflight = new Set<ProxyRequest>();
  let draining = false;
  let url = '';
  let connector: HostConnector | null = null;
  /** The deployed apps' active versions and configs, from signaling. */
  let apps = new Map<string, AppRef>();
  const metrics = options.metrics?.enabled === false ? null : new IngressMetrics({ pool, inFlight: () => inflight.size }, { processMetrics: options.metrics?.processMetrics ?? true });
  let metricsServer: { url: string; close(): Promise<void> } | null = null;
  const tail = new TailHub(options.tail);
  const forwarder = new PeerForwarder(peerForwardOpts, (outcome) => metrics?.peerForward('out', outcome));
  let peerServer: import('node:http').Server | null = null;
  let peerUrl: string | null = null;
  const otlp = options.otlp ? new OtlpExporter({ serviceName: `dcdn-${options.name ?? 'ingress'}`, ...options.otlp }) : null;
  const ingressName = options.name ?? 'ingress';
  const consoleLogs = new RequestLogBook<TailEvent>(options.consoleLogs ?? {}, (event, line, cut) => {
    if (!tail.active) return;
    const { type: _type, logs: _logs, logsCut: _cut, ...request } = event;
    tail.publish({ ...request, type: 'log', logTime: line?.time ?? new Date().toISOString(), line, cut });
  });
  const kv = options.kv
    ? new KvService({
        store: options.kv,
        ...(options.kvLimits ? { limits: options.kvLimits } : {}),
        ...(options.kvIdleTimeoutMs !== undefined ? { idleTimeoutMs: options.kvIdleTimeoutMs } : {}),
        bindings: (name) => apps.get(name)?.config.kv,
        log,
        ...(metrics ? { onop: (op: string, code: string | null, seconds: number) => metrics.kv(op, code, seconds) } : {}),
      })
    : null;
  const sql = options.sql
    ? new SqlService({
        store: options.sql,
        ...(options.sqlLimits ? { limits: options.sqlLimits } : {}),
        bindings: (name) => apps.get(name)?.config.sql ?? [],
        log,
        ...(metrics ? { oncall: (mode: string, code: string | null, seconds: number) => metrics.sql(mode, code, seconds) } : {}),
      })
    : null;

  const cache = new HttpCache(options.cache, originFetch(pool, router, proxyOpts), log);
  const cacheApi = new CacheApiService(cache, options.kvIdleTimeoutMs);
  if (metrics) registerCacheMetrics(metrics.registry, cache, cacheApi);

  const app = Fastify({
    logger: false,
    // Let long URLs reach our own 414 check instead of failing route matching.
    routerOptions: { maxParamLength: proxyOpts.maxUrlLength },
    forceCloseConnections: 'idle',
    // While draining, our own handler answers 503 INGRESS_SHUTTING_DOWN (with its code).
    return503OnClosing: false,
    // A URL fastify's router can't decode (`/%zz`) is still a URL the app may want: forward it.
    frameworkErrors: (_err, request, reply) => forward(request, reply),
    serverFactory: (handler) =>
      createServer(
        {
          // Node's limit covers the request line too: leave room for our own 414 and 431 checks.
          maxHeaderSize: proxyOpts.maxHeaderBytes + proxyOpts.maxUrlLength + 1024,
          headersTimeout: headersTimeout,
          // Node checks the header deadline on a timer, every 30 s unless told: a 1 s header
          // timeout would fire after up to 31 s.
          connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4))),
          // Bodies are policed by our idle timeout and minimum rate (proxy.ts); a whole-request
          // deadline would cut big uploads.
          requestTimeout: 0,
          keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
          // Node answers a missing Host with a bare 400; proxy.ts answers it with a code.
          requireHostHeader: false,
        },
        handler,
      ),
    clientErrorHandler: (err, socket) => answerClientError(err as unknown as Error & { code?: string; rawPacket?: Buffer }, socket, log, metrics),
  });

  // Node's own answers that would carry no code: CONNECT (the socket would just be closed) and
  // an Expect other than 100-continue (a bare 417).
  app.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    endLingering(socket as Socket, rawErrorResponse('INGRESS_NOT_IMPLEMENTED', 'the ingress is not a forward proxy: CONNECT is not supported', newRequestId()));
  });
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    sendError(res, 'INGRESS_EXPECTATION_FAILED', `cannot meet the expectation ${JSON.stringify(String(req.headers.expect).slice(0, 60))}`, { connection: 'close' });
  });

  // Every method Node's parser knows is forwarded (but CONNECT, above, and TRACE, refused in
  // proxy.ts). Registered bodyless: bodies stream to the host, fastify must never read them.
  const methods = METHODS.filter((m) => m !== 'CONNECT');
  for (const m of methods) app.addHttpMethod(m, { hasBody: false, overrideExisting: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  // Whatever fastify itself would answer (not found, an error in a hook) carries a code too.
  app.setNotFoundHandler((request, reply) => forward(request, reply));
  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const code = codeForStatus(status);
    if (ERRORS[code].status >= 500) log('error', 'request failed in the ingress', { url: request.url, err: err.message });
    reply.hijack();
    sendError(reply.raw, code, ERRORS[code].status >= 500 ? 'the ingress failed while answering this request' : err.message);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    // Every answer carries a request id; error-response.ts sends it for the hijacked ones.
    const requestId = traceOf(request.raw).requestId;
    reply.header(REQUEST_ID_HEADER, requestId);
    if (reply.statusCode < 400 || reply.hasHeader('dcdn-error')) return payload;
    const code = codeForStatus(reply.statusCode);
    let message: string = ERRORS[code].summary;
    try {
      const parsed = JSON.parse(String(payload)) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // not JSON: keep the summary
    }
    reply.code(ERRORS[code].status).header('dcdn-error', code).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store');
    return JSON.stringify({ error: { code, message, status: ERRORS[code].status, requestId } }) + '\n';
  });

  app.register(websocket, { options: { maxPayload: WS_MAX_MESSAGE_SIZE + 1024 } });
  app.register(async (scoped) => {
    scoped.get(
      '/_dcdn/host-ws',
      {
        websocket: true,
        preValidation: async (request, reply) => {
          if (!request.ws) {
            reply.hijack();
            return sendError(reply.raw, 'INGRESS_NOT_FOUND', '/_dcdn/host-ws only takes WebSocket upgrades from hosts');
          }
          const ticket = (request.query as Record<string, unknown>).ticket;
          if (typeof ticket !== 'string' || !tickets.check(ticket)) {
            reply.hijack();
            sendError(reply.raw, 'INGRESS_TICKET_INVALID', 'a valid ticket is required');
          }
        },
      },
      (socket: WebSocket, request) => {
        const ticket = tickets.redeem((request.query as Record<string, string>).ticket!);
        if (!ticket || !connector) return socket.close(1008, 'ticket spent');
        connector.attachWebSocket(ticket.hostId, ticket.conn, socket);
      },
    );
    registerTail(scoped, tail, options.authorizeOperator);
  });
  registerCachePurge(app, cache, options.authorizeOperator);

  registerSqlAdmin(app, sql, options.authorizeOperator);

  app.get('/_dcdn/health', async (_request, reply) => {
    const now = Date.now();
    const hosts = pool.list().map((h) => ({
      id: h.id,
      name: h.name,
      transport: h.transport,
      rtc: h.rtc ?? undefined,
      inFlight: h.inFlight,
      served: h.served,
      rttMs: h.session.rttMs,
      since: new Date(h.since).toISOString(),
      penalised: h.penalisedUntil > now,
      penalisedForMs: Math.max(0, h.penalisedUntil - now),
      failures: h.consecutiveFailures,
      penaltyLevel: pool.standing(h.id, now).level,
      userAgent: h.info.userAgent,
      stats: h.session.stats,
    }));
    reply.header('cache-control', 'no-store');
    return {
      ok: hosts.length > 0 && !draining,
      draining,
      signaling: connector?.signalingConnected ?? false,
      apps: router.apps ? [...router.apps] : null,
      inFlight: inflight.size,
      webSockets: webSockets.stats,
      // shared: every ingress reads the same data (Redis); a SQLite file is this ingress's alone.
      kv: kv ? { store: kv.store.kind, shared: kv.store.kind !== 'sqlite', ...kv.stats } : null,
      sql: sql ? { store: sql.store.kind, shared: sql.store.kind !== 'pglite', ...sql.stats } : null,
      cache: { ...cache.store.stats, maxBytes: cache.store.maxBytes, ...cache.stats },
      appFailures: pool.appFailures(),
      hosts,
      // Hosts signaling lists, attached here or not (cluster mode attaches only those placed here).
      known: connector?.knownCount ?? 0,
      ...(connector?.view.clustered ? { cluster: connector.view.summary() } : {}),
    };
  });

  if (metrics) serveMetrics(app, metrics, options.metrics ?? {});

  app.route({ method: methods, url: '/*', handler: (request, reply) => forward(request, reply) });

  /** Every request that is not for an ingress endpoint: hands it to a ProxyRequest. */
  function forward(request: FastifyRequest, reply: FastifyReply): void {
    reply.hijack();
    serve(request.raw, reply.raw, null);
  }

  /**
   * The cluster side of a request: `dcdn-via` and, for a request from a visitor, the hand-off to
   * a peer when no host here can take it. A request from a peer (`from`) is never forwarded again.
   */
  function clusterFor(req: IncomingMessage, res: ServerResponse, from: string | null): ProxyCluster | undefined {
    const view = connector?.view;
    if (from !== null) return { via: `${from},${name}` };
    // One ingress alone (dcdn up, or a cluster of one) has nobody to forward to: its answers
    // stay as they were before clusters, without dcdn-via.
    if (!view?.clustered || view.ingresses.length < 2) return undefined;
    return { via: name, forward: (f) => handOff(view, req, res, f) };
  }

  function handOff(view: PlacementView, req: IncomingMessage, res: ServerResponse, f: Parameters<NonNullable<ProxyCluster['forward']>>[0]) {
    const key = view.peerKey;
    if (!key || !connector || draining) return null;
    const peers = rankPeers(view, connector.known(), (traits) => mayServe(traits, f.app));
    if (peers.length === 0) return null;
    return forwarder.forward({ req, res, headers: f.headers, hasBody: f.hasBody, peers, self: name, peerKey: key, localError: f.localError });
  }

  /** A request on the peer listener: only ingresses of the cluster, by their signature. */
  function servePeer(req: IncomingMessage, res: ServerResponse): void {
    const auth = verifyPeerRequest(connector?.view.peerKey ?? null, req.headers[PEER_HEADER], req.method ?? '', req.url ?? '', Date.now(), peerForwardOpts.authWindowMs);
    if ('error' in auth) {
      metrics?.peerForward('in', 'forbidden');
      hostLog('warn', 'refused a request on the peer port', { address: req.socket.remoteAddress, why: auth.error });
      return sendError(res, 'INGRESS_PEER_FORBIDDEN', auth.error);
    }
    metrics?.peerForward('in', 'accepted');
    inheritRequestId(req, req.headers[REQUEST_ID_HEADER]);
    serve(req, res, auth.from);
  }

  /** Serves one request from a visitor (`from` null) or forwarded by peer ingress `from`. */
  function serve(raw: IncomingMessage, res: ServerResponse, from: string | null): void {
    const request = { raw, url: raw.url ?? '/', method: raw.method ?? 'GET' };
    if ((request.raw as IncomingMessage & { upgrade?: boolean }).upgrade) {
      // Node gave this request up to the upgrade path: no keep-alive, nothing closes the
      // socket unless we do once the answer is out.
      const socket = request.raw.socket;
      res.shouldKeepAlive = false;
      res.once('finish', () => endLingering(socket));
    }
    const trace = traceOf(request.raw);
    if (request.url.startsWith('/_dcdn/')) return sendError(res, 'INGRESS_NOT_FOUND', `no ingress endpoint ${request.url.split('?')[0]}`);
    if (draining) return sendError(res, 'INGRESS_SHUTTING_DOWN', 'the ingress is shutting down', { connection: 'close' });
    const started = performance.now();
    const startedAt = Date.now();
    const requestId = trace.requestId;
    const cluster = clusterFor(raw, res, from);
    // The handler's console lines are kept only for requests that start while someone tails.
    const tracked = tail.active;
    const timing = tail.wantsTiming || (timingSampleRate > 0 && Math.random() < timingSampleRate) ? new RequestTiming() : undefined;
    const proxied = new ProxyRequest(
      request.raw,
      res,
      pool,
      from === null ? proxyOpts : peerProxyOpts,
      {
        log: (level, msg, fields) => hostLog(level, msg, { ...fields, requestId }),
        ...(timing ? { timing } : {}),
        ...(tracked
          ? {
              sent: (host) => {
                host.session.onlog ??= (frame) => consoleLogs.receive(host.session, frame);
                consoleLogs.track(requestId, host.session);
              },
            }
          : {}),
      },
      trace,
      cluster,
      cache,
    );
    inflight.add(proxied);
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const status = res.headersSent ? res.statusCode : 0;
      log('info', 'request', {
        requestId,
        method: request.method,
        url: request.url.length > 200 ? `${request.url.slice(0, 200)}…` : request.url,
        status,
        ms: Math.round(seconds * 1000),
        host: proxied.hostName,
        error: proxied.errorCode,
        complete: res.writableFinished,
        forwardedTo: proxied.forwardedTo,
        forwardedBy: from ?? undefined,
      });
      metrics?.request({ app: proxied.appName, status, transport: proxied.transport ?? NO_TRANSPORT, seconds, bytesIn: proxied.bytesIn, bytesOut: proxied.bytesOut, code: proxied.errorCode });
      const waterfall = timing?.result() ?? null;
      if (waterfall) metrics?.segments(waterfall, proxied.transport ?? NO_TRANSPORT);
      if (otlp && trace.sampled) {
        otlp.add({
          traceId: trace.traceId,
          spanId: trace.spanId,
          ...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
          name: `${request.method} ${proxied.appName || '-'}`,
          startMs: startedAt,
          endMs: startedAt + seconds * 1000,
          error: status >= 500 || status === 0 || proxied.errorCode !== undefined,
          attributes: {
            'http.request.method': request.method,
            'http.response.status_code': status,
            'url.path': request.url.split('?')[0]!.slice(0, MAX_URL),
            'dcdn.request_id': requestId,
            'dcdn.app': proxied.appName || '-',
            ...(proxied.hostName ? { 'dcdn.host': proxied.hostName, 'dcdn.host.volunteer': proxied.hostVolunteer } : {}),
            ...(proxied.transport ? { 'dcdn.transport': proxied.transport } : {}),
            ...(proxied.errorCode ? { 'dcdn.error_code': proxied.errorCode } : {}),
          },
        });
      }
      if (tail.active || tracked) {
        const event: TailEvent = {
          type: 'request',
          time: new Date(startedAt).toISOString(),
          requestId,
          app: proxied.appName,
          version: apps.get(proxied.appName)?.version ?? null,
          method: request.method,
          url: request.url.length > MAX_URL ? `${request.url.slice(0, MAX_URL)}…` : request.url,
          status,
          ms: Math.round(seconds * 1000),
          host: proxied.hostName ?? null,
          volunteer: proxied.hostVolunteer,
          transport: proxied.transport ?? null,
          code: proxied.errorCode ?? null,
          ingress: ingressName,
          logs: [],
          logsCut: null,
          ...(timing ? { timing: waterfall } : {}),
        };
        const held = tracked ? consoleLogs.finish(requestId, event) : null;
        if (held) {
          event.logs = held.lines;
          event.logsCut = held.cut;
        }
        if (tail.active) tail.publish(event);
      }
    });
    void proxied.run().finally(() => inflight.delete(proxied));
  }

  return {
    app,
    pool,
    get url() {
      return url;
    },
    get inFlight() {
      return inflight.size;
    },
    webSockets,
    kv,
    sql,
    cache,
    metrics,
    tail,
    otlp,
    get metricsUrl() {
      return metricsServer?.url ?? null;
    },
    get peerUrl() {
      return peerUrl;
    },
    get cluster() {
      return connector?.view.summary() ?? null;
    },
    async listen() {
      const address = await app.listen({ port: options.port ?? 8080, host: options.host ?? '127.0.0.1' });
      url = address;
      if (metrics && options.metrics?.listen) {
        try {
          metricsServer = await listenMetrics(metrics, options.metrics.listen);
        } catch (err) {
          await app.close();
          throw err;
        }
        log('info', 'metrics listening', { url: metricsServer.url });
      }
      if (options.peerListen) {
        try {
          peerServer = await listenPeer(options.peerListen, servePeer, proxyOpts, headersTimeout, options.keepAliveTimeoutMs ?? 5_000, (err, socket) => answerClientError(err, socket, log, metrics));
        } catch (err) {
          await metricsServer?.close();
          await app.close();
          throw err;
        }
        const bound = peerServer.address() as import('node:net').AddressInfo;
        const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
        peerUrl = `http://${host}:${bound.port}`;
        log('info', 'peer listener listening', { url: peerUrl, advertised: options.peerUrl ?? peerUrl });
      }
      const advertisedPeerUrl = options.peerUrl ?? peerUrl ?? undefined;
      const wsBase = options.publicWsBase ?? address.replace(/^http/, 'ws');
      const connectorOpts: HostConnectorOptions = {
        ...CONNECTOR_DEFAULTS,
        signalUrl: options.signalUrl,
        token: options.token,
        name,
        region: options.region ?? CONNECTOR_DEFAULTS.region,
        weight: options.weight ?? CONNECTOR_DEFAULTS.weight,
        ...(advertisedPeerUrl ? { peerUrl: advertisedPeerUrl } : {}),
        detachGraceMs: options.detachGraceMs ?? CONNECTOR_DEFAULTS.detachGraceMs,
        detachDrainMs: options.detachDrainMs ?? CONNECTOR_DEFAULTS.detachDrainMs,
        attachJitterMs: options.attachJitterMs ?? CONNECTOR_DEFAULTS.attachJitterMs,
        clusterWaitMs: options.clusterWaitMs ?? CONNECTOR_DEFAULTS.clusterWaitMs,
        transport: options.transport ?? 'webrtc',
        wsUrl: `${wsBase}/_dcdn/host-ws`,
        rtcOpenTimeoutMs: options.rtcOpenTimeoutMs ?? CONNECTOR_DEFAULTS.rtcOpenTimeoutMs,
        wsDialTimeoutMs: options.wsDialTimeoutMs ?? CONNECTOR_DEFAULTS.wsDialTimeoutMs,
        rtc: options.rtc ?? {},
        createOfferer: offererFactory(options.rtcBackend ?? 'werift'),
        // maxIncomingStreams counts the streams a host opens: its KV operations.
        session: { maxIncomingStreams: options.kvMaxConcurrentPerHost ?? 64, ...options.session },
        ...(metrics ? { onSessionEvent: (event: 'opened' | 'failed' | 'fallback', transport: string) => metrics.session(event, transport) } : {}),
        onHostStream: (stream, host) => {
          const traits = pool.get(host.id)?.traits;
          // A host may touch the data and caches of the apps it may serve, and no other.
          const caller = { host: host.name, mayUse: (name: string) => traits !== undefined && apps.has(name) && mayServe(traits, apps.get(name)) };
          if (stream.request.url.startsWith(CACHE_PATH_PREFIX)) return void cacheApi.serve(stream, caller);
          if (stream.request.url.startsWith('/sql/')) {
            if (!sql) return stream.reset('SQL_NOT_CONFIGURED', 'D1_ERROR: this ingress has no SQL store');
            return void sql.serve(stream, caller);
          }
          if (!kv) return stream.reset('KV_NOT_CONFIGURED', 'this ingress has no KV store');
          void kv.serve(stream, caller);
        },
      };
      connector = new HostConnector(pool, tickets, connectorOpts, hostLog);
      connector.onapps = (list) => {
        // A deploy or rollback changes what the app answers: what the cache holds of it goes.
        const next = new Map(list.map((a) => [a.name, a]));
        for (const [appName, before] of apps) {
          if (next.get(appName)?.version === before.version) continue;
          const purged = cache.purge(appName);
          if (purged > 0) log('info', 'cache purged for a new version', { app: appName, purged });
        }
        apps = next;
        router.setApps(list);
        log('info', 'apps', { apps: list.map((a) => `${a.name}@${a.version}`).join(',') || 'none' });
      };
      connector.oncron = (m) => {
        const c = connector;
        void runScheduled(pool, apps.get(m.app), m, cronTimeoutMs).then((outcome) => {
          log(outcome.ok ? 'info' : 'warn', 'scheduled run', { app: m.app, cron: m.cron, host: outcome.host, ok: outcome.ok, code: outcome.code || undefined, ms: outcome.ms });
          c?.cronResult({ id: m.id, ...outcome });
        });
      };
      let kvSplitLogged = '';
      connector.oncluster = (view) => {
        // Two ingresses on two SQLite files are two datasets: a handler's reads would depend on
        // which ingress served the request. Said once per change of the ingress list.
        const live = view.ingresses.filter((i) => !i.draining).map((i) => i.name).sort().join(',');
        if (kv && kv.store.kind === 'sqlite' && view.live > 1 && live !== kvSplitLogged) {
          log('error', 'kv split: this ingress keeps handlers\' KV in a local SQLite file while other ingresses serve too; each has its own data. Use a shared store (--kv-store redis://…)', { ingresses: live });
        }
        kvSplitLogged = live;
      };
      connector.start();
      log('info', 'ingress listening', { url: address, transport: connectorOpts.transport, rtc: options.rtcBackend ?? 'werift' });
      return address;
    },
    async close() {
      if (draining) return;
      draining = true;
      const grace = options.shutdownGraceMs ?? 10_000;
      log('info', 'draining', { inFlight: inflight.size, graceMs: grace });
      // Leave signaling first: placement moves this ingress's hosts to the others at once,
      // while the sessions here finish the requests in flight.
      connector?.leaveSignaling();
      // Stop taking connections; keep-alive clients get 503 INGRESS_SHUTTING_DOWN. Host
      // sessions (and the WebSocket endpoint) stay up until the requests on them are done.
      app.server.close();
      app.server.closeIdleConnections();
      webSockets.closeAll();
      peerServer?.closeIdleConnections();
      tail.close();
      const deadline = Date.now() + grace;
      while (inflight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (inflight.size > 0) log('warn', 'grace period over; cutting requests', { inFlight: inflight.size });
      app.server.closeAllConnections();
      peerServer?.closeAllConnections();
      if (peerServer) await new Promise<void>((r) => peerServer!.close(() => r()));
      forwarder.close();
      await connector?.close();
      await app.close();
      await otlp?.close();
      await metricsServer?.close();
      await options.kv?.close();
      await options.sql?.close();
      hostLog.stop();
      log('info', 'ingress stopped');
    },
  };
}

/**
 * Answers what Node's HTTP parser rejected before fastify saw a request: oversized headers
 * (431), slow headers (408), unknown methods (501), and malformed or ambiguous requests such as
 * smuggling shapes (400). The connection is closed either way, since its framing can no longer
 * be trusted; it lingers so that a client still sending reads the answer (error-response.ts).
 */
function answerClientError(err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket, log: Log, metrics: IngressMetrics | null): void {
  // Already answered and closing: the parser keeps failing on what the client still sends.
  if (isLingering(socket)) return;
  if (!socket.writable) return void socket.destroy();
  // The parser may fail in the body of a request already handed out (and answered): one
  // response per request, so just close once that answer is flushed.
  if ((socket as Socket & { _httpMessage?: unknown })._httpMessage) return void socket.end();
  let code: ErrorCode = 'INGRESS_BAD_REQUEST';
  let message = err.message.replace(/\s+/g, ' ').slice(0, 200);
  if (err.code === 'HPE_HEADER_OVERFLOW') code = 'INGRESS_HEADERS_TOO_LARGE';
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADER_TIMEOUT') {
    code = 'INGRESS_REQUEST_TIMEOUT';
    message = 'the request headers did not arrive within the header timeout';
  } else if (err.code === 'HPE_INVALID_METHOD') {
    // A well-formed method token Node's parser does not know (TRACK, made-up ones) is a
    // method the ingress does not implement; anything else is just not HTTP.
    const method = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}) \S/.exec(err.rawPacket?.toString('latin1', 0, 64) ?? '')?.[1];
    if (method) {
      code = 'INGRESS_NOT_IMPLEMENTED';
      message = `the ingress does not forward ${method} requests`;
    }
  }
  const requestId = newRequestId();
  log('warn', 'rejected by the HTTP parser', { requestId, code, parser: err.code });
  metrics?.request({ app: NO_APP, status: ERRORS[code].status, transport: NO_TRANSPORT, seconds: 0, bytesIn: 0, bytesOut: 0, code });
  endLingering(socket, rawErrorResponse(code, message, requestId));
}


/**
 * The peer listener: plain Node HTTP with the public port's parser limits, whose requests all go
 * to `handler` (which checks the `dcdn-peer` signature first).
 */
function listenPeer(
  at: { host: string; port: number },
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  proxyOpts: ProxyOptions,
  headersTimeout: number,
  keepAliveTimeout: number,
  onClientError: (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => void,
): Promise<import('node:http').Server> {
  const server = createServer(
    {
      maxHeaderSize: proxyOpts.maxHeaderBytes + proxyOpts.maxUrlLength + 1024,
      headersTimeout,
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4))),
      requestTimeout: 0,
      keepAliveTimeout,
      requireHostHeader: false,
    },
    handler,
  );
  server.on('clientError', (err, socket) => onClientError(err as Error & { code?: string; rawPacket?: Buffer }, socket as Socket));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * The cluster options are what other ingresses see of this one (placement, forwarding): a bad
 * one is refused at once with INGRESS_BAD_OPTION naming it, rather than spread to the cluster.
 */
function checkClusterOptions(o: IngressOptions): void {
  const bad = (option: string, message: string) => new DcdnError('INGRESS_BAD_OPTION', `\`${option}\` ${message}`);
  if (o.region !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(o.region)) throw bad('region', "must be 1-64 letters, digits, '.', '_' or '-'");
  if (o.weight !== undefined && !(Number.isFinite(o.weight) && o.weight > 0 && o.weight <= 1000)) throw bad('weight', 'must be a number over 0 and at most 1000');
  if (o.name !== undefined && (o.name.length === 0 || o.name.length > 128)) throw bad('name', 'must be 1-128 characters');
  if (o.peerUrl !== undefined && !/^https?:\/\/[^/\s?#]+\/?$/.test(o.peerUrl)) throw bad('peerUrl', 'must be http://HOST[:PORT]');
}
