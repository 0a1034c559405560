/**
 * Test helpers for the cluster suites: a bare `ws` peer that records what signaling sends it,
 * and cluster parts several signaling servers of one test share (a fake only where a real
 * multi-node store is not at hand: one memory presence, a bus that routes by node id and can
 * be cut to inject a fault).
 */
import { WebSocket } from 'ws';
import type { ServerMessage } from '../../protocol/index.ts';
import { mintToken, type Role } from '../token.ts';
import { MemoryEphemeral, MemoryPresence } from './memory.ts';
import { PresenceUnavailableError, type BusMessage, type ClusterEvent, type ClusterParts, type NodeRecord, type PresenceStore } from './types.ts';

export const TEST_SECRET = 'cluster-test-secret-0123456789';

export class TestPeer {
  readonly socket: WebSocket;
  readonly received: ServerMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #consumed = new Set<number>();
  #wake: Array<() => void> = [];

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data) => {
      this.received.push(JSON.parse(String(data)) as ServerMessage);
      this.#wake.splice(0).forEach((w) => w());
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      this.#wake.splice(0).forEach((w) => w());
    }));
  }

  /** Connects with a fresh token of `role` and says hello; resolves with the welcome. */
  static async join(ws: string, role: Role, info: Record<string, unknown> = {}, claims: { sub?: string; scope?: string[] } = {}): Promise<[TestPeer, Extract<ServerMessage, { type: 'welcome' }>]> {
    const token = mintToken(TEST_SECRET, { role, ttlSeconds: 600, ...claims });
    const socket = new WebSocket(`${ws}?token=${encodeURIComponent(token)}`);
    const peer = new TestPeer(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    peer.send({ type: 'hello', info });
    return [peer, await peer.next('welcome')];
  }

  /** An upgrade that must be refused: its status and dcdn-error code. */
  static refused(ws: string, token: string): Promise<{ status: number; code: string | undefined }> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${ws}?token=${encodeURIComponent(token)}`);
      socket.on('open', () => reject(new Error('the upgrade was accepted')));
      socket.on('error', () => {});
      socket.on('unexpected-response', (request, response) => {
        response.resume();
        request.destroy();
        resolve({ status: response.statusCode ?? 0, code: response.headers['dcdn-error'] as string | undefined });
      });
    });
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The next message of `type` not consumed yet. */
  async next<T extends ServerMessage['type']>(type: T, timeoutMs = 5000): Promise<Extract<ServerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex((m, j) => m.type === type && !this.#consumed.has(j));
      if (i >= 0) {
        this.#consumed.add(i);
        return this.received[i] as Extract<ServerMessage, { type: T }>;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) throw new Error(`no ${type} message; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.terminate();
  }
}

/** One presence store and one bus for several signaling nodes of a test. */
export class SharedCluster {
  readonly presence = new MemoryPresence({ nodeId: 'shared', region: 'default' });
  readonly ephemeral = new MemoryEphemeral();
  readonly #handlers = new Map<string, (m: BusMessage, from: string) => void>();
  readonly #regions = new Map<string, string>();
  /** Nodes whose bus is cut: sends to and from them fail as a Redis outage would. */
  readonly cut = new Set<string>();
  /** Feed events dropped on their way to a node (a lost stream tail). */
  dropEvents: ((e: ClusterEvent, node: string) => boolean) | null = null;
  /** Nodes the node list leaves out (their lease ran out). */
  readonly dead = new Set<string>();

  parts(nodeId: string, region = 'default'): ClusterParts {
    this.#regions.set(nodeId, region);
    const memory = this.presence;
    const presence: PresenceStore = {
      register: (e, o) => memory.register(e, o),
      reclaim: (e) => memory.reclaim(e),
      unregister: (k, ep, r) => memory.unregister(k, ep, r),
      update: (k, ep, p) => memory.update(k, ep, p),
      renew: (own, n) => memory.renew(own, n),
      snapshot: () => memory.snapshot(),
      countVolunteers: (a) => memory.countVolunteers(a),
      close: async () => {},
      nodes: async (): Promise<NodeRecord[]> => [...this.#regions].filter(([id]) => !this.dead.has(id)).map(([id, r]) => ({ id, region: r, cv: 0, startedAt: 0, peers: 0 })),
      tail: (cursor, onEvent, onReset) => memory.tail(cursor, (e, c) => {
        if (!this.dropEvents?.(e, nodeId)) onEvent(e, c);
      }, onReset),
    };
    const ephemeral = this.ephemeral;
    return {
      nodeId,
      region,
      // Peers carry node and region as in any multi-node cluster.
      kind: 'redis',
      presence,
      bus: {
        send: async (node: string, m: BusMessage) => {
          const h = this.#handlers.get(node);
          if (!h || this.cut.has(node) || this.cut.has(nodeId)) throw new PresenceUnavailableError(`bus to ${node} is down`);
          setImmediate(() => h(m, nodeId));
        },
        onMessage: (h) => void this.#handlers.set(nodeId, h),
        close: async () => void this.#handlers.delete(nodeId),
      },
      ephemeral,
      close: async () => {
        this.#handlers.delete(nodeId);
      },
    };
  }
}
