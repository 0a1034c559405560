/**
 * The signaling service over HTTP: authentication before the WebSocket upgrade, the health
 * endpoint, listen and close. The per-connection protocol lives in signaling-hub.ts.
 *
 * Request lifecycle for `GET /v1/signal`:
 * ```
 * upgrade request ─▶ preValidation: token? ── missing/invalid/expired ─▶ 401 + dcdn-error
 *                                      │  └─ role not host/ingress ───▶ 403 + dcdn-error
 *                                      ▼
 *                   plain HTTP (no Upgrade) ─▶ 426 SIG_UPGRADE_REQUIRED
 *                                      ▼
 *                   101 Switching Protocols ─▶ SignalingHub.accept()
 * ```
 */
import { BanList } from './bans.ts';
import { registerHostsApi, type HostsApiOptions } from './hosts-api.ts';
import { trustFromScope } from '../protocol/index.ts';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import fastifyWebsocket from '@fastify/websocket';
import { SignalingError } from '../protocol/index.ts';
import type { PeerInfo, PeerRole } from '../protocol/index.ts';
import { bearerToken, sendError } from './http-auth.ts';
import { AppStore, type AppManifestEntry } from './app-store.ts';
import { CronScheduler } from './cron-scheduler.ts';
import { registerControlApi, type ControlPlane } from './control-api.ts';
import { ControlCache, type ControlCacheOptions } from './control-cache.ts';
import type { ControlStore, CronRun } from './control-store.ts';
import { SqliteControlStore } from './sqlite-control-store.ts';
import { INVITE_GRACE_MS, SignalingHub, type SignalingHubOptions } from './signaling-hub.ts';
import { MIN_SECRET_LENGTH, verifyToken, type Claims, type Role } from './token.ts';
import { iceServerSource, type IceConfig } from './turn.ts';
import { registerMetricsRoute, SignalingMetrics, type SignalingMetricsOptions } from './metrics.ts';
import { registerDashboard } from './dashboard.ts';
import { clusterParts, type ClusterOptions } from './cluster/connect.ts';
import type { ClusterParts } from './cluster/types.ts';

/** Where peers connect. */
export const SIGNAL_PATH = '/v1/signal';
/** Presence counts for operators and health checks. */
export const HEALTH_PATH = '/v1/health';
/** The verified claims of the caller's token (any role), so a page can explain a bad invite. */
export const WHOAMI_PATH = '/v1/whoami';

export interface SignalingServerOptions {
  /** HMAC secret that tokens are signed with; at least 16 characters. Required. */
  secret: string;
  /** Largest incoming message in bytes; a larger one closes the socket with 1009. Default 64 KiB. */
  maxMessageBytes?: number;
  /**
   * Token bucket per connection, counting messages and pings: refills `perSecond`, holds up to
   * `burst`. Running dry sends SIG_RATE_LIMITED and closes with 1008. Default 50/s, burst 200.
   */
  rateLimit?: { perSecond?: number; burst?: number };
  /** Ping interval; a socket that misses the pongs of 2 intervals is terminated. Default 5000. */
  heartbeatIntervalMs?: number;
  /** How long a new connection may take to send hello (else SIG_HELLO_TIMEOUT, 1008). Default 10000. */
  helloTimeoutMs?: number;
  /**
   * Bytes that may sit unsent towards one peer; beyond that the peer is considered not reading
   * and is terminated (leave reason `slow-consumer`). Default 4 MiB. When set, it also applies to
   * ingresses unless `ingressMaxBufferedBytes` is set.
   */
  maxBufferedBytes?: number;
  /**
   * The same allowance towards an ingress, whose welcome lists every host of the cluster (about
   * 4 MB at 10 000 hosts). Default 64 MiB, or `maxBufferedBytes` when that is set.
   */
  ingressMaxBufferedBytes?: number;
  /**
   * Fastify `logger` option, or a pino logger to log through (the CLI's, so that one process
   * writes one stream). Default false. Request URLs are logged with `token=` redacted; with a
   * pino logger, each request is logged only at debug level.
   * Joins, leaves and closes are logged at info level with their reasons.
   */
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /**
   * Adds routes (host page, bundles, ...). Runs inside its own encapsulated plugin, after the
   * signaling routes are registered.
   */
  routes?: (app: FastifyInstance) => void | Promise<void>;
  /**
   * The app store. When given, the control API (/v1/apps, see control-api.ts) is served and
   * every peer is told the apps' active versions after its welcome and on every change.
   * Wrapped in a SqliteControlStore with `bans`; `controlStore` replaces both.
   */
  apps?: AppStore;
  /**
   * The control plane (apps, versions, secrets, bans, keys): a SqliteControlStore on one machine,
   * a PgControlStore in a cluster (node/start-signal.ts opens one from `sqlite:PATH` or
   * `postgres://…`). When given, the control API is served as with `apps`, and `apps`/`bans` are
   * ignored. The caller closes it after the server.
   */
  controlStore?: ControlStore;
  /** The node's cache of the control plane (control-cache.ts): code LRU size, retry after a failed read. */
  controlCache?: Pick<ControlCacheOptions, 'codeCacheBytes' | 'refreshRetryMs'>;
  /**
   * The live signaling nodes and the control version each applied (the cluster wiring hands in
   * presence.nodes()). A deploy, rollback, delete or secret change answers once each has it.
   * Absent: this node alone.
   */
  clusterNodes?: () => Promise<Array<{ id: string; cv: number }>>;
  /** How long such a write waits for every node (deploy-barrier.ts). Default 5000. */
  deployBarrierMs?: number;
  /**
   * How long `dcdn deploy` waits for a connected host to load a new version before it goes
   * live (control-api.ts); a version that fails to load, or loads on no host in time, is
   * refused with APP_LOAD_FAILED. With no operator host connected the check is skipped.
   * Default 15000.
   */
  appCheckTimeoutMs?: number;
  /**
   * Scheduled handlers (cron-scheduler.ts, docs/apps.md "Cron triggers"): the run timeout and
   * how long a node without an ingress waits before claiming a tick. Runs whenever apps are
   * served; `enabled: false` turns this node's clock off (other nodes still run the ticks).
   */
  cron?: { enabled?: boolean; runTimeoutMs?: number; claimGraceMs?: number };
  /** Banned hosts (`dcdn hosts ban`); durable when given a file. Default: in memory. Ignored with `controlStore`. */
  bans?: BanList;
  /** Volunteers: open joins and invite lifetimes (hosts-api.ts). */
  volunteers?: HostsApiOptions;
  /**
   * Most volunteer hosts connected from one address at once; more are refused before the
   * upgrade with SIG_RATE_LIMITED (an open join must not let one machine fill the pool).
   * Operators' hosts are not counted. Default 8.
   */
  maxVolunteersPerAddress?: number;
  /** Signals a host may relay per second by kind, on top of `rateLimit` (signaling-hub.ts). */
  signalRateLimits?: SignalingHubOptions['signalRateLimits'];
  /**
   * STUN/TURN servers handed to every peer in its welcome, TURN with fresh coturn REST
   * credentials per connection (turn.ts). Default none: peers use only what they were given.
   */
  ice?: IceConfig;
  /**
   * Prometheus metrics at `/metrics` (signaling/metrics.ts) for operator tokens or
   * `metrics.token`. Default: on.
   */
  metrics?: SignalingMetricsOptions;
  /**
   * Cluster mode (docs/cluster.md): presence, relay and shared limits in the Redis at `url`, so
   * this node is one of several. Absent: one machine, in-memory parts, no service needed.
   */
  cluster?: ClusterOptions;
  /** Ready-made cluster parts (tests, embedding); overrides `cluster`. The caller closes them. */
  clusterParts?: ClusterParts;
  /** How many ingresses each host attaches to (`dcdn signal --attach`), 1..8. Default 2. */
  attach?: number;
  /** How often this node renews its presence entries. Default 5000. */
  renewIntervalMs?: number;
  /** The key ingresses sign forwarded requests with (the control store's `peer_key`). Default: random per process. */
  peerKey?: () => string;
  /** The control-plane version this node has applied (the control store's), reported with every presence renew. */
  controlVersion?: () => number;
}

export interface SignalingServer {
  app: FastifyInstance;
  /** The Prometheus metrics; null with `metrics.enabled: false`. */
  metrics: SignalingMetrics | null;
  /** Listens and returns the HTTP base URL, e.g. `http://127.0.0.1:40123`. Defaults: port 0, 127.0.0.1. */
  listen(port?: number, host?: string): Promise<string>;
  /** Closes every peer with 1001 (destroying stragglers after 1 s), then the HTTP server. Idempotent. */
  close(): Promise<void>;
  /** Peers that said hello, on every node of the cluster. */
  peers(): PeerInfo[];
  /** This node's cluster parts. */
  readonly cluster: ClusterParts;
  /** The control store and this node's cache of it (`control.cache.version` is the node's applied `cv`). */
  control: ControlPlane;
}

/** The roles {@link SIGNAL_PATH} accepts; operator tokens are for other endpoints. */
const PEER_ROLES: readonly PeerRole[] = ['host', 'ingress'];
const ANY_ROLE: readonly Role[] = ['host', 'ingress', 'operator'];

/**
 * Creates the signaling service. Nothing listens until `listen()`.
 *
 * @example
 * ```ts
 * const server = createSignalingServer({ secret: process.env.DCDN_SECRET! });
 * const base = await server.listen(8080, '0.0.0.0');
 * const url = base.replace(/^http/, 'ws') + '/v1/signal';
 * ```
 */
export function createSignalingServer(options: SignalingServerOptions): SignalingServer {
  const { secret } = options;
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new TypeError(`the signaling secret must be a string of at least ${MIN_SECRET_LENGTH} characters`);
  }
  const maxMessageBytes = positive('maxMessageBytes', options.maxMessageBytes ?? 64 * 1024);
  const rateLimit = {
    perSecond: positive('rateLimit.perSecond', options.rateLimit?.perSecond ?? 50),
    burst: positive('rateLimit.burst', options.rateLimit?.burst ?? 200),
  };
  const heartbeatIntervalMs = positive('heartbeatIntervalMs', options.heartbeatIntervalMs ?? 5000);
  const helloTimeoutMs = positive('helloTimeoutMs', options.helloTimeoutMs ?? 10_000);
  const maxBufferedBytes = positive('maxBufferedBytes', options.maxBufferedBytes ?? 4 * 1024 * 1024);
  const ice = iceServerSource(options.ice);
  const maxVolunteersPerAddress = positive('maxVolunteersPerAddress', options.maxVolunteersPerAddress ?? 8);

  // forceCloseConnections: browsers keep spare keep-alive sockets open (preconnects that never
  // carried a request) which 'idle' does not reap, so close() would wait for them forever.
  // WebSockets are closed properly first, in the preClose hook below.
  const app = Fastify({ ...loggerOptions(options.logger), forceCloseConnections: true });
  const control = controlPlaneOf(app, options);
  const { cache } = control;
  /** Whether the control API is served and peers are told the apps (as with an app store before). */
  const servesApps = options.controlStore !== undefined || options.apps !== undefined;
  // Metrics are per node: a cluster's are summed by Prometheus.
  const metrics: SignalingMetrics | null = options.metrics?.enabled === false ? null : new SignalingMetrics((): PeerInfo[] => hub.localPeers(), { processMetrics: options.metrics?.processMetrics ?? true });
  const owned = options.clusterParts ? null : clusterParts(options.cluster, (level, message, fields) => app.log[level](fields ?? {}, message));
  const cluster = options.clusterParts ?? owned!.parts;
  // The key ingresses sign forwards with: the control store's, read once the store is ready.
  let peerKey: string | null = null;
  const hub: SignalingHub = new SignalingHub({
    cluster,
    volunteerCap: maxVolunteersPerAddress,
    ingressMaxBufferedBytes: positive('ingressMaxBufferedBytes', options.ingressMaxBufferedBytes ?? (options.maxBufferedBytes !== undefined ? maxBufferedBytes : 64 * 1024 * 1024)),
    ...(options.attach !== undefined ? { attach: options.attach } : {}),
    ...(options.renewIntervalMs !== undefined ? { renewIntervalMs: positive('renewIntervalMs', options.renewIntervalMs) } : {}),
    peerKey: options.peerKey ?? (() => peerKey ?? ''),
    controlVersion: options.controlVersion ?? (() => cache.version),
    isBanned: (host) => cache.banMatch(host),
    helloTimeoutMs,
    heartbeatIntervalMs,
    rateLimit,
    maxBufferedBytes,
    log: app.log,
    ...(options.signalRateLimits ? { signalRateLimits: options.signalRateLimits } : {}),
    inviteGraceMs: nonNegative('volunteers.inviteGraceMs', options.volunteers?.inviteGraceMs ?? INVITE_GRACE_MS),
    ...(servesApps ? { apps: () => cache.manifest() } : {}),
    ...(ice ? { ice } : {}),
    ...(metrics ? { onrelay: () => metrics.relayed(), onfail: (code) => metrics.refused(code, 'connection') } : {}),
  });
  if (metrics) registerMetricsRoute(app, metrics, secret, options.metrics?.token);
  // The operator dashboard (dashboard.ts): its figures come from the ingresses' metrics.
  if (metrics) {
    registerDashboard(app, {
      secret,
      peers: () => hub.peers(),
      hosts: () => hub.hosts(),
      apps: () => (servesApps ? cache.manifest().map((a) => ({ name: a.name, version: a.version })) : []),
      appHosts: () => hub.appHosts(),
    });
  }
  // A change from any node (the store's watch refreshed the cache): peers hear of new apps, and
  // local hosts a new ban matches are cut (as POST /v1/hosts/:id/ban does on its own node).
  const scheduler =
    servesApps && options.cron?.enabled !== false
      ? new CronScheduler({
          store: control.store,
          apps: () => cache.manifest(),
          dispatch: hub.cronRuns,
          node: cluster.nodeId,
          log: (level, message, fields) => app.log[level](fields, message),
          ...(metrics ? { onRun: (run: CronRun) => metrics.cronRun(run.ok ? 'ok' : (run.code ?? 'error'), run.trigger) } : {}),
          ...(options.cron?.runTimeoutMs !== undefined ? { runTimeoutMs: options.cron.runTimeoutMs } : {}),
          ...(options.cron?.claimGraceMs !== undefined ? { claimGraceMs: options.cron.claimGraceMs } : {}),
        })
      : null;
  const unsubscribe = cache.onChange((change) => {
    if (change.apps && servesApps) hub.broadcastApps(cache.manifest());
    if (change.apps) scheduler?.poke();
    if (change.bans) disconnectBanned(hub, cache, cluster.nodeId);
    // Publish the applied control version now, so a deploy barrier on any node sees it at once.
    if (cluster.kind === 'redis') void hub.renew();
  });
  app.addHook('onClose', async () => unsubscribe());
  if (servesApps) {
    const checkTimeoutMs = options.appCheckTimeoutMs;
    // In a cluster a write waits for every live node's applied version (their presence records).
    const clusterNodes = options.clusterNodes ?? (cluster.kind === 'redis' ? () => cluster.presence.nodes() : undefined);
    const barrier = { ...(clusterNodes ? { clusterNodes } : {}), ...(options.deployBarrierMs !== undefined ? { deployBarrierMs: options.deployBarrierMs } : {}) };
    void app.register(async (scope) =>
      registerControlApi(scope, control, secret, { ...(scheduler ? { cronTrigger: (a: AppManifestEntry) => scheduler.trigger(a) } : {}), candidates: cluster.ephemeral, check: (id, name, config, ms) => hub.checkApp(id, name, config, ms), appHosts: () => hub.appHosts(), hostReports: (a) => hub.hostReports(a), onHostChange: (l) => hub.onHostChange(l), ...(checkTimeoutMs ? { checkTimeoutMs } : {}), ...barrier }),
    );
  }
  void app.register(async (scope) => registerHostsApi(scope, hub, control, secret, options.volunteers));
  // preValidation hands the verified claims to the WebSocket handler through this map.
  const identities = new WeakMap<FastifyRequest, Claims>();

  void app.register(fastifyWebsocket, {
    options: { maxPayload: maxMessageBytes },
    errorHandler(error, socket, request) {
      // Framing errors (WS_ERR_*) already made ws send a close frame; destroying the socket now
      // could drop it. Anything else is our bug: log loudly and cut the connection.
      const code = (error as Error & { code?: unknown }).code;
      if (typeof code === 'string' && code.startsWith('WS_ERR_')) {
        request.log.info({ code, detail: error.message }, 'signaling peer broke the WebSocket protocol');
        return;
      }
      request.log.error({ err: error }, 'signaling handler failed');
      socket.terminate();
    },
  });

  void app.register(async (scope) => {
    scope.route({
      method: 'GET',
      url: SIGNAL_PATH,
      async preValidation(request, reply) {
        try {
          const claims = verifyToken(secret, bearerToken(request), PEER_ROLES);
          // No welcome may be partial: peers wait until the presence directory is loaded.
          if (!hub.ready) throw new SignalingError('SIG_PEER_UNREACHABLE', 'this signaling node is starting; try again shortly');
          const address = request.socket.remoteAddress ?? '';
          const banned = claims.role === 'host' ? cache.banMatch({ address, sub: claims.sub }) : null;
          if (banned !== null) throw new SignalingError('SIG_BANNED', `this host is banned${banned ? `: ${banned}` : ''}`);
          if (claims.role === 'host' && trustFromScope(claims.scope).volunteer && (await hub.volunteersFrom(address)) >= maxVolunteersPerAddress) {
            throw new SignalingError('SIG_RATE_LIMITED', `at most ${maxVolunteersPerAddress} volunteer hosts may connect from one address`);
          }
          identities.set(request, claims);
        } catch (err) {
          if (!(err instanceof SignalingError)) throw err;
          request.log.info({ code: err.code }, 'signaling upgrade refused');
          metrics?.refused(err.code, 'upgrade');
          return sendError(reply, err.code, err.message);
        }
      },
      handler(_request, reply) {
        return sendError(reply, 'SIG_UPGRADE_REQUIRED', 'connect with a WebSocket client');
      },
      wsHandler(socket, request) {
        const claims = identities.get(request);
        // Unreachable: preValidation either stored claims or answered the request.
        if (claims === undefined) return void socket.terminate();
        hub.accept(socket, { role: claims.role as PeerRole, sub: claims.sub, scope: claims.scope, address: request.socket.remoteAddress ?? '', exp: claims.exp });
      },
    });

    // Public: counts and roles only. Host ids, names and subjects stay with operators (an
    // operator token here, or GET /v1/hosts), so nobody can read here an identity to copy.
    // The whole cluster, from the presence directory; 503 `starting` until it is loaded.
    scope.get(HEALTH_PATH, async (request, reply) => {
      if (!hub.ready) return reply.code(503).header('retry-after', '1').send({ ok: false, status: 'starting', node: cluster.nodeId });
      const peers = hub.peers();
      const nodes = hub.nodes();
      const counts = hub.counts();
      if (isOperator(request)) return { ok: true, ...counts, node: cluster.nodeId, nodes, peers };
      return { ok: true, ...counts, node: cluster.nodeId, nodes, peers: peers.map((p) => ({ role: p.role, since: p.since, ...(p.volunteer ? { volunteer: true } : {}) })) };
    });

    /** Whether the request carries a valid operator token (no token, or any other, is simply public). */
    const isOperator = (request: FastifyRequest): boolean => {
      if (request.headers.authorization === undefined) return false;
      try {
        verifyToken(secret, bearerToken(request), ['operator']);
        return true;
      } catch (err) {
        if (err instanceof SignalingError) return false;
        throw err;
      }
    };

    scope.get(WHOAMI_PATH, async (request, reply) => {
      let claims: Claims;
      try {
        claims = verifyToken(secret, bearerToken(request), ANY_ROLE);
      } catch (err) {
        if (!(err instanceof SignalingError)) throw err;
        return sendError(reply, err.code, err.message);
      }
      return reply.header('cache-control', 'no-store').send({ role: claims.role, sub: claims.sub ?? null, exp: claims.exp, scope: claims.scope ?? null });
    });
  });

  if (options.routes !== undefined) {
    const routes = options.routes;
    void app.register(async (scope) => {
      await routes(scope);
    });
  }

  app.addHook('onReady', async () => {
    // A cluster URL that cannot be reached fails the start; a store that goes away later does
    // not (island mode). Peers are told the apps at welcome, so nothing is served before the
    // cache has read the store; the first presence snapshot loads in the background (health
    // says `starting` until then).
    if (owned) await owned.connected;
    await cache.ready;
    if (!options.peerKey) peerKey = await control.store.meta('peer_key');
    void hub.start();
    hub.startHeartbeat();
    await scheduler?.start();
  });
  // Stopped before the hub closes (which settles runs in flight), their records written before the store closes.
  if (scheduler) {
    app.addHook('preClose', async () => scheduler.stop());
    app.addHook('onClose', async () => scheduler.settled());
  }
  // Our close runs before @fastify/websocket's preClose, which would close sockets without a code.
  app.addHook('preClose', async () => hub.close());
  if (owned) app.addHook('onClose', async () => owned.parts.close());

  let closing: Promise<void> | null = null;
  return {
    app,
    metrics,
    async listen(port = 0, host = '127.0.0.1') {
      return app.listen({ port, host });
    },
    close() {
      closing ??= app.close();
      return closing;
    },
    peers: () => hub.peers(),
    cluster,
    control,
  };
}

/**
 * The server's control plane: `controlStore` as given, or today's SQLite parts (`apps`, `bans`;
 * in memory when absent) wrapped in a SqliteControlStore. Closes what it made with the server.
 */
function controlPlaneOf(app: FastifyInstance, options: SignalingServerOptions): ControlPlane {
  let store = options.controlStore;
  if (!store) {
    const apps = options.apps ?? new AppStore(':memory:');
    const bans = options.bans ?? new BanList(':memory:');
    const sqlite = new SqliteControlStore({ apps, bans });
    store = sqlite;
    app.addHook('onClose', async () => {
      await sqlite.close();
      if (!options.apps) apps.close();
      if (!options.bans) bans.close();
    });
  }
  const cache = new ControlCache(store, { ...options.controlCache, log: (level, message, fields) => app.log[level]({ ...fields }, message) });
  app.addHook('onClose', async () => cache.close());
  return { store, cache };
}

/** Cuts every local host a ban now matches (leave reason `banned`, SIG_BANNED). */
/** Cuts this node's hosts that a ban matches: every node hears the change and cuts its own. */
function disconnectBanned(hub: SignalingHub, cache: ControlCache, nodeId: string): void {
  for (const host of hub.hosts()) {
    if (host.node !== nodeId) continue;
    const reason = cache.banMatch({ hostId: host.hostId, address: host.address, sub: host.sub ?? undefined });
    if (reason !== null) void hub.disconnectBanned(host.id, reason).catch(() => undefined);
  }
}

function nonNegative(name: string, value: number): number {
  if (!(typeof value === 'number' && value >= 0 && Number.isFinite(value))) throw new RangeError(`${name} must be a number of at least 0`);
  return value;
}

/** The token from `Authorization: Bearer` or, for browsers (which cannot set headers), `?token=`. */
function positive(name: string, value: number): number {
  if (!(typeof value === 'number' && value > 0 && Number.isFinite(value))) throw new RangeError(`${name} must be a positive number`);
  return value;
}

/** A request as logged: its URL never carries a token into the logs. */
const redactedRequest = (req: FastifyRequest) => ({
  method: req.method,
  url: redactToken(req.url),
  host: req.host,
  remoteAddress: req.ip,
  remotePort: req.socket?.remotePort,
});

/**
 * Fastify's logger options for `logger`: a pino instance is used as it is (fastify 5 takes it as
 * `loggerInstance`), with the redacting request serializer; options are extended with it.
 */
function loggerOptions(logger: SignalingServerOptions['logger']): Pick<FastifyServerOptions, 'logger' | 'loggerInstance' | 'logController'> {
  if (logger === false || logger === undefined) return { logger: false };
  if (typeof logger === 'object' && typeof (logger as FastifyBaseLogger).child === 'function') {
    const instance = logger as FastifyBaseLogger;
    // Every /host, /join and control call at info would drown the joins and leaves.
    const debug = (instance as FastifyBaseLogger & { isLevelEnabled?(level: string): boolean }).isLevelEnabled?.('debug') === true;
    return { loggerInstance: instance.child({}, { serializers: { req: redactedRequest } }), logController: new LogController({ disableRequestLogging: !debug }) };
  }
  const base = typeof logger === 'object' ? (logger as Exclude<FastifyServerOptions['logger'], boolean | undefined>) : {};
  return { logger: { ...base, serializers: { ...base.serializers, req: redactedRequest } } };
}

/** Redacts `token=` and the join page's `invite=` (a host token too). */
function redactToken(url: string): string {
  return url.replace(/([?&](?:token|invite)=)[^&#]*/gi, '$1[redacted]');
}
