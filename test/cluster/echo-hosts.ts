/**
 * Serving hosts for the cluster scenarios, in Node over the WebSocket transport (so werift does
 * not eat the two cores; SCALE-OUT §4.2), built like test/node-host.ts but doing what the
 * scenarios need of a well-behaved host:
 * - it reports every deployed app as `serving` (so `dcdn deploy` sees the rollout complete and
 *   tests can tell when a version reached it) and answers deploy checks `ok`;
 * - it answers any request with JSON `{host, app, url, versions}`; `/slow?ms=N` answers after N ms
 *   (requests in flight at a kill); `/kv/BINDING/KEY` reads the app's KV through its session,
 *   answering 200/404, or 503 with the KV error code in `x-kv-error` ({@link KV_ERROR_HEADER});
 * - it can die like a tab: `destroy()` drops signaling and its sessions without a goodbye;
 * - it runs scheduled events (cron ticks) by recording them in {@link EchoHosts.scheduled} and
 *   answering 204, as a tab whose `scheduled()` succeeded.
 */
import { WebSocket } from 'ws';
import { NodeWebSocketChannel } from '../../ingress/ws-channel.ts';
import { parseLinkSignal, SCHEDULED_HEADERS, SCHEDULED_METHOD, SCHEDULED_OK_STATUS, Session, SignalingClient, type AppRef, type Stream } from '../../protocol/index.ts';
import { mintToken } from '../../signaling/index.ts';
import { capturingWebSocket, type VanishableWebSocket } from './vanishable-ws.ts';

export interface EchoHostOptions {
  /** Host name (and `info.hostId` unless `hostId` is given). */
  name: string;
  /** A host id other than the name: two hosts claiming one id (duplicate-id scenarios). */
  hostId?: string;
  /** `ws://…/v1/signal` (usually a load balancer in front of signaling). */
  signalUrl: string;
  capabilities?: string[];
}

export interface EchoHost {
  readonly name: string;
  /** `info.hostId`: what ingresses key their sessions by (and list as `id` in their health). */
  readonly hostId: string;
  readonly client: SignalingClient;
  /** Sessions by connection id, open or closed. */
  readonly sessions: Map<string, { session: Session; ws: WebSocket; ingressPeer: string; openedAt: number }>;
  /** The active versions it was told of, by app. */
  readonly versions: Map<string, number>;
  /** The deployment ids (AppRef.sha256) it was told of, by app: a secret change makes a new one. */
  readonly shas: Map<string, string>;
  /** Error codes signaling sent it. */
  readonly errors: string[];
  /** Number of sessions currently open. */
  openSessions(): number;
}

const encoder = new TextEncoder();
/**
 * Where an echo host puts the KV code its read failed with: the ingress keeps `dcdn-*` headers
 * for itself (a host cannot forge them), so the host's own report travels in its own header.
 */
export const KV_ERROR_HEADER = 'x-kv-error';

function answer(stream: Stream, status: number, body: unknown, headers: Array<[string, string]> = []): void {
  // A delayed answer (`/slow`, a KV read) may find its stream gone: cancelled, or its session dead.
  if (stream.closed) return;
  stream.respond({ status, headers: [['content-type', 'application/json'], ...headers] });
  void stream
    .write(encoder.encode(JSON.stringify(body)))
    .then(() => stream.end())
    .catch(() => undefined);
}

export class EchoHosts {
  readonly hosts = new Map<string, EchoHost>();
  /** Every session any host opened, in order (a re-attachment shows up here). */
  readonly sessionLog: Array<{ host: string; at: number }> = [];
  /** Every scheduled event any host ran, in order (`controller.cron` and `controller.scheduledTime`). */
  readonly scheduled: Array<{ host: string; app: string; cron: string; scheduledTime: number }> = [];
  readonly #secret: string;
  readonly #sockets = new Map<string, () => VanishableWebSocket | null>();

  constructor(secret: string) {
    this.#secret = secret;
  }

  start(options: EchoHostOptions): EchoHost {
    const sessions: EchoHost['sessions'] = new Map();
    const versions = new Map<string, number>();
    const shas = new Map<string, string>();
    const errors: string[] = [];
    const captured = capturingWebSocket();
    const client = new SignalingClient({
      url: options.signalUrl,
      token: () => mintToken(this.#secret, { role: 'host', sub: options.name, ttlSeconds: 3600 }),
      info: { hostId: options.hostId ?? options.name, name: options.name, userAgent: 'cluster-echo-host', capabilities: options.capabilities ?? [] },
      WebSocketImpl: captured.Impl as never,
      backoff: { initialMs: 100, maxMs: 2000 },
    });
    const host: EchoHost = {
      name: options.name,
      hostId: options.hostId ?? options.name,
      client,
      sessions,
      versions,
      shas,
      errors,
      openSessions: () => [...sessions.values()].filter((s) => !s.session.isClosed).length,
    };
    const serve = (session: Session) => (stream: Stream) => {
      const { url, app = '', method, headers } = stream.request;
      if (method === SCHEDULED_METHOD) {
        const header = (name: string) => headers.find(([n]) => n === name)?.[1] ?? '';
        this.scheduled.push({ host: options.name, app, cron: header(SCHEDULED_HEADERS.cron), scheduledTime: Number(header(SCHEDULED_HEADERS.scheduledTime)) });
        stream.respond({ status: SCHEDULED_OK_STATUS, headers: [] }, true);
        return;
      }
      // The ingress sends the absolute URL the visitor asked for.
      const parsed = new URL(url, 'http://host.invalid');
      const path = parsed.pathname;
      const query = parsed.searchParams;
      if (path === '/slow') {
        setTimeout(() => answer(stream, 200, { host: options.name, app, url }), Math.min(Number(query.get('ms') ?? 1000), 30_000));
        return;
      }
      if (path.startsWith('/kv/')) {
        const kv = session.open({ method: 'GET', url: path, headers: [], app }, true);
        kv.onhead = (head) => {
          kv.ondata = () => undefined;
          answer(stream, head.status === 404 ? 404 : 200, { host: options.name, app, kv: head.status });
        };
        kv.onreset = (err) => answer(stream, 503, { host: options.name, app, error: err.code }, [[KV_ERROR_HEADER, err.code]]);
        return;
      }
      answer(stream, 200, { host: options.name, app, path, versions: Object.fromEntries(versions) });
    };
    client.onapps = (apps: AppRef[]) => {
      versions.clear();
      shas.clear();
      for (const a of apps) {
        versions.set(a.name, a.version);
        shas.set(a.name, a.sha256);
      }
      client.reportStatus(apps.map((a) => ({ name: a.name, version: a.version, state: 'serving' as const, sha256: a.sha256 })));
    };
    client.oncheck = (check) => void client.checked(check.id, true, '', 1);
    client.onerror = (code) => void errors.push(code);
    client.onsignal = (from, data) => {
      const signal = parseLinkSignal(data);
      if (signal?.kind === 'close') {
        sessions.get(signal.conn)?.session.close();
        return;
      }
      if (signal?.kind !== 'websocket') return;
      const url = new URL(signal.url);
      url.searchParams.set('ticket', signal.ticket);
      const ws = new WebSocket(url);
      ws.on('error', () => undefined);
      ws.on('open', () => {
        const session = new Session(new NodeWebSocketChannel(ws), { role: 'server', agent: `cluster-echo-host/${options.name}` });
        session.onstream = serve(session);
        sessions.set(signal.conn, { session, ws, ingressPeer: from, openedAt: Date.now() });
        this.sessionLog.push({ host: options.name, at: Date.now() });
      });
    };
    client.start();
    this.hosts.set(options.name, host);
    this.#sockets.set(options.name, captured.current);
    return host;
  }

  /** Leaves cleanly: signaling close frame, sessions closed. */
  close(name: string): void {
    const host = this.hosts.get(name);
    if (!host) return;
    this.hosts.delete(name);
    host.client.close();
    for (const s of host.sessions.values()) s.session.close();
  }

  /** Dies like a crashed tab: every socket destroyed, no close frame, no goodbye. */
  destroy(name: string): void {
    const host = this.hosts.get(name);
    if (!host) return;
    this.hosts.delete(name);
    for (const s of host.sessions.values()) s.ws.terminate();
    // The signaling socket goes the same way: stop reconnecting, and drop it without a close frame.
    const raw = this.#sockets.get(name)?.();
    if (raw) raw.vanish = true;
    host.client.close();
  }

  closeAll(): void {
    for (const name of [...this.hosts.keys()]) this.close(name);
  }
}
