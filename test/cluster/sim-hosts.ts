/**
 * Many presence-only hosts in one process: real `SignalingClient`s with host tokens that say
 * hello and never serve (SCALE-OUT §4.2; 1000 of them cost about 150 MiB and 3 % of a core).
 * They leave the way real tabs do: by closing (a close frame), by vanishing (the socket destroyed,
 * no close frame: a crashed machine or a dropped Wi-Fi), or by moving to another signaling node
 * under the same host id (a reconnect through the load balancer).
 */
import { SignalingClient } from '../../protocol/index.ts';
import { mintToken } from '../../signaling/index.ts';
import { capturingWebSocket, type VanishableWebSocket } from './vanishable-ws.ts';

export type LeaveMode = 'close' | 'vanish';

export interface SimHost {
  readonly hostId: string;
  /** The signaling URL it is connected (or connecting) to. */
  readonly url: string;
  readonly client: SignalingClient;
  /** Server-assigned id of the current connection, null while not welcomed. */
  readonly peerId: string | null;
  /** Error codes the server sent it (SIG_DUPLICATE_PEER…). */
  readonly errors: string[];
  /** When its first welcome arrived (ms since the epoch), or null. */
  readonly welcomedAt: number | null;
}

export interface SimHostsOptions {
  secret: string;
  /** Token `sub` (and id prefix). Default `sim`. */
  sub?: string;
  /** Reconnect back-off for every client (defaults are the client's). */
  backoff?: { initialMs?: number; maxMs?: number };
}

export class SimHosts {
  readonly #opts: SimHostsOptions;
  readonly #hosts = new Map<string, { host: SimHost; socket: () => VanishableWebSocket | null }>();

  constructor(options: SimHostsOptions) {
    this.#opts = options;
  }

  /** Live simulated hosts (started and not left). */
  get live(): SimHost[] {
    return [...this.#hosts.values()].map((h) => h.host);
  }

  get(hostId: string): SimHost | undefined {
    return this.#hosts.get(hostId)?.host;
  }

  /** Starts a host `hostId` against `url` (`ws://…/v1/signal`). */
  start(hostId: string, url: string): SimHost {
    if (this.#hosts.has(hostId)) throw new Error(`sim host ${hostId} is already live`);
    const { Impl, current } = capturingWebSocket();
    const sub = this.#opts.sub ?? 'sim';
    const client = new SignalingClient({
      url,
      token: () => mintToken(this.#opts.secret, { role: 'host', sub, ttlSeconds: 3600 }),
      info: { hostId, name: hostId, userAgent: 'sim-host', capabilities: [] },
      WebSocketImpl: Impl as never,
      backoff: this.#opts.backoff,
    });
    const state = { peerId: null as string | null, welcomedAt: null as number | null, errors: [] as string[] };
    const host: SimHost = {
      hostId,
      url,
      client,
      get peerId() {
        return state.peerId;
      },
      get errors() {
        return state.errors;
      },
      get welcomedAt() {
        return state.welcomedAt;
      },
    };
    client.onwelcome = (m) => {
      state.peerId = m.id;
      state.welcomedAt ??= Date.now();
    };
    client.onstatechange = (s) => {
      if (s !== 'open') state.peerId = null;
    };
    client.onerror = (code) => void state.errors.push(code);
    client.start();
    this.#hosts.set(hostId, { host, socket: current });
    return host;
  }

  /** Starts `count` hosts `${prefix}${i}`, spread over `urls` in turn. */
  startMany(prefix: string, count: number, urls: string[]): SimHost[] {
    return Array.from({ length: count }, (_, i) => this.start(`${prefix}${i}`, urls[i % urls.length]!));
  }

  /** Leaves: `close` sends a close frame; `vanish` destroys the socket without one. */
  leave(hostId: string, mode: LeaveMode): void {
    const entry = this.#hosts.get(hostId);
    if (!entry) return;
    this.#hosts.delete(hostId);
    const socket = entry.socket();
    if (mode === 'vanish' && socket) socket.vanish = true;
    entry.host.client.close();
  }

  /**
   * Moves a host to `url` under the same host id: its old connection vanishes (no close frame,
   * as when a machine's network changes) and a new one says hello elsewhere at once.
   */
  move(hostId: string, url: string): SimHost {
    this.leave(hostId, 'vanish');
    return this.start(hostId, url);
  }

  /** Resolves when every live host has been welcomed (or throws after `ms`). */
  async allWelcomed(ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.live.some((h) => h.peerId === null)) {
      if (Date.now() > deadline) throw new Error(`${this.live.filter((h) => h.peerId === null).length} of ${this.live.length} sim hosts not welcomed within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Closes every host (close frames). */
  closeAll(mode: LeaveMode = 'close'): void {
    for (const id of [...this.#hosts.keys()]) this.leave(id, mode);
  }
}
