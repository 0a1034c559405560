/**
 * An ingress with real signaling and real HTTP on port 0, whose hosts are Node processes'
 * worth of misbehaviour on purpose (test/node-host.ts) over the real WebSocket transport: the
 * setup the ingress fault tests share.
 */
import { createIngress, type Ingress, type IngressOptions } from '../ingress/index.ts';
import type { Stream } from '../protocol/index.ts';
import { createSignalingServer, mintToken, type SignalingServer, type SignalingServerOptions } from '../signaling/index.ts';
import { startNodeHost, type NodeHost } from './node-host.ts';

export const SECRET = 'test-secret-0123456789abcdef';

export interface NodeNetwork {
  readonly ingress: Ingress;
  readonly signaling: SignalingServer;
  /** Signaling's WebSocket URL. */
  readonly signalUrl: string;
  /** The hosts started and not yet removed. */
  readonly hosts: NodeHost[];
  /**
   * Starts a host named `name` whose streams go to `onstream` (swap it later with
   * {@link behave}), and waits until the ingress has it in its pool.
   */
  addHost(name: string, onstream: (s: Stream) => void): Promise<NodeHost>;
  /** Starts a host without waiting for anything. */
  startHost(name: string, onstream: (s: Stream) => void): NodeHost;
  /** What host `name` does with its next streams. */
  behave(name: string, onstream: (s: Stream) => void): void;
  /** Closes every host and waits until the pool is empty (between tests). */
  removeHosts(): Promise<void>;
  close(): Promise<void>;
}

/** Signaling (with `signalingOptions` on top), then an ingress on the WebSocket transport with `options` on top. */
export async function startNodeNetwork(options: Partial<IngressOptions> = {}, signalingOptions: Partial<SignalingServerOptions> = {}): Promise<NodeNetwork> {
  const signaling = createSignalingServer({ ...signalingOptions, secret: SECRET });
  const signalUrl = (await signaling.listen(0)).replace(/^http/, 'ws') + '/v1/signal';
  const ingress = createIngress({
    signalUrl,
    token: () => mintToken(SECRET, { role: 'ingress', ttlSeconds: 600 }),
    port: 0,
    transport: 'websocket',
    ...options,
  });
  await ingress.listen();
  const hosts: NodeHost[] = [];
  const behaviour = new Map<string, (s: Stream) => void>();
  const startHost = (name: string, onstream: (s: Stream) => void) => {
    behaviour.set(name, onstream);
    const host = startNodeHost({ signalUrl, token: mintToken(SECRET, { role: 'host', sub: name, ttlSeconds: 600 }), name, onstream: (s) => behaviour.get(name)?.(s) });
    hosts.push(host);
    return host;
  };
  return {
    ingress,
    signaling,
    signalUrl,
    hosts,
    startHost,
    async addHost(name, onstream) {
      const host = startHost(name, onstream);
      await host.ready();
      await until(() => ingress.pool.list().some((h) => h.name === name));
      return host;
    },
    behave: (name, onstream) => void behaviour.set(name, onstream),
    async removeHosts() {
      for (const h of hosts.splice(0)) h.close();
      behaviour.clear();
      await until(() => ingress.pool.size === 0);
    },
    async close() {
      for (const h of hosts.splice(0)) h.close();
      await ingress.close();
      await signaling.close();
    },
  };
}

/** Polls `cond` every `pollMs` until it holds, or throws after `ms`. */
export async function until(cond: () => boolean, ms = 5000, pollMs = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
