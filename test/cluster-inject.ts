/**
 * A WebSocket relay in front of real signaling that adds the `cluster` message a cluster's
 * signaling sends ingresses, for tests of the ingress side while (or where) signaling does not
 * send it itself. Ingresses dial the relay; hosts may dial signaling directly. Everything else
 * passes through unchanged, in order.
 *
 * The cluster it announces is built like signaling's: every ingress connected through it, from
 * its hello info (name, region, weight, peerUrl), plus `extra` entries (ingresses that exist
 * only in placement, to put hosts elsewhere). Once real signaling sends a `cluster` message of
 * its own, the relay stops adding any.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { ClusterIngress, ClusterMessage } from '../protocol/index.ts';

export interface ClusterInjector {
  /** The WebSocket URL ingresses dial instead of signaling's. */
  readonly url: string;
  readonly peerKey: string;
  /** Placement-only ingresses listed besides the connected ones. */
  extra: ClusterIngress[];
  /** K, as `dcdn signal --attach` sets it. */
  attach: number;
  /** The region of "this signaling node". */
  region: string;
  /** Per-name changes to what connected ingresses said in hello (draining, weight). */
  overrides: Map<string, Partial<ClusterIngress>>;
  /** Sends the current cluster message to every ingress now. */
  push(): void;
  /** Cluster messages the relay added. */
  readonly injected: number;
  /** Whether real signaling sent a cluster message (then the relay adds none). */
  readonly realClusterSeen: boolean;
  close(): Promise<void>;
}

interface Relayed {
  downstream: WebSocket;
  upstream: WebSocket;
  self: ClusterIngress | null;
  welcomed: boolean;
}

/**
 * @param opts.own The relay alone describes the cluster: real signaling's `cluster` messages are
 * dropped (tests that place hosts on made-up ingresses). Default: fill in only while real
 * signaling sends none.
 */
export async function startClusterInjector(signalUrl: string, opts: { peerKey?: string; attach?: number; region?: string; own?: boolean } = {}): Promise<ClusterInjector> {
  const server: Server = createServer();
  const wss = new WebSocketServer({ server });
  const relays = new Set<Relayed>();
  let injected = 0;
  let realClusterSeen = false;

  const message = (): ClusterMessage => {
    const ingresses: ClusterIngress[] = [];
    for (const r of relays) if (r.self && r.welcomed) ingresses.push({ ...r.self, ...injector.overrides.get(r.self.name) });
    ingresses.push(...injector.extra);
    return { type: 'cluster', ingresses, attach: injector.attach, peerKey: injector.peerKey, region: injector.region };
  };
  const push = () => {
    if (realClusterSeen) return;
    const text = JSON.stringify(message());
    for (const r of relays) {
      if (!r.self || !r.welcomed || r.downstream.readyState !== WebSocket.OPEN) continue;
      r.downstream.send(text);
      injected++;
    }
  };

  wss.on('connection', (downstream, request) => {
    const target = new URL(request.url ?? '/', signalUrl);
    const upstream = new WebSocket(target);
    const relay: Relayed = { downstream, upstream, self: null, welcomed: false };
    relays.add(relay);
    const early: string[] = [];
    upstream.on('open', () => {
      for (const m of early.splice(0)) upstream.send(m);
    });
    downstream.on('message', (data) => {
      const text = data.toString();
      try {
        const m = JSON.parse(text) as { type?: string; info?: Record<string, unknown> };
        if (m.type === 'hello' && m.info) {
          const info = m.info;
          relay.self = {
            name: String(info.name ?? 'ingress'),
            region: typeof info.region === 'string' ? info.region : 'default',
            weight: typeof info.weight === 'number' ? info.weight : 1,
            draining: false,
            ...(typeof info.peerUrl === 'string' ? { peerUrl: info.peerUrl } : {}),
          };
        }
      } catch {
        // not JSON: signaling will say so
      }
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else early.push(text);
    });
    upstream.on('message', (data) => {
      const text = data.toString();
      let type: string | undefined;
      let role: string | undefined;
      try {
        ({ type, role } = JSON.parse(text) as { type?: string; role?: string });
      } catch {
        // pass it on as it is
      }
      if (type === 'cluster') {
        if (opts.own) return;
        realClusterSeen = true;
      }
      if (downstream.readyState === WebSocket.OPEN) downstream.send(text);
      if (type === 'welcome') {
        if (role !== 'ingress') relay.self = null;
        relay.welcomed = true;
        push();
      }
    });
    const end = () => {
      if (!relays.delete(relay)) return;
      downstream.close();
      upstream.close();
      push();
    };
    downstream.on('close', end);
    upstream.on('close', end);
    downstream.on('error', () => {});
    upstream.on('error', () => {});
  });

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const path = new URL(signalUrl).pathname;
  const injector: ClusterInjector = {
    url: `ws://127.0.0.1:${port}${path}`,
    peerKey: opts.peerKey ?? 'test-peer-key-0123456789abcdef0123456789',
    extra: [],
    attach: opts.attach ?? 2,
    region: opts.region ?? 'default',
    overrides: new Map(),
    push,
    get injected() {
      return injected;
    },
    get realClusterSeen() {
      return realClusterSeen;
    },
    async close() {
      for (const r of relays) {
        r.downstream.terminate();
        r.upstream.terminate();
      }
      relays.clear();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return injector;
}
