/**
 * The `cluster` message (docs/cluster-ingress.md): what each ingress is told of the live
 * ingresses of the whole cluster, K and the peer key, sent after its welcome and, gathered for
 * `debounceMs`, whenever that set changes. Also the placement signaling shows operators
 * (`GET /v1/hosts`): the same `assign` over the same list, so it agrees with every ingress.
 */
import { assign, linkKey, type ServerMessage } from '../protocol/index.ts';
import type { Directory } from './cluster/directory.ts';
import type { PresenceEntry } from './cluster/types.ts';

/** One ingress in a `cluster` message. */
type ClusterIngress = Extract<ServerMessage, { type: 'cluster' }>['ingresses'][number];

export interface ClusterAnnouncerOptions {
  directory: Directory;
  /** This node's region (the region of its hosts when they carry none). */
  region: string;
  /** How many ingresses each host attaches to. */
  attach: number;
  peerKey: () => string;
  debounceMs: number;
  /** Sends a message to every local ingress. */
  toIngresses(message: ServerMessage): void;
}

export class ClusterAnnouncer {
  readonly #o: ClusterAnnouncerOptions;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #last = '';
  #closed = false;

  constructor(options: ClusterAnnouncerOptions) {
    this.#o = options;
  }

  /** What ingresses are told of each other (placement and forwarding). */
  message(): ServerMessage {
    return { type: 'cluster', ingresses: this.#liveIngresses(), attach: this.#o.attach, peerKey: this.#o.peerKey(), region: this.#o.region };
  }

  /** The placement of a host entry on the live ingresses, best first (the list is read once per call of this). */
  placer(): (e: PresenceEntry) => string[] {
    const ingresses = this.#liveIngresses();
    return (e) => assign(linkKey(e.peer), e.region, ingresses, this.#o.attach);
  }

  /** Sends the message to local ingresses once changes settle, if the set changed. */
  schedule(): void {
    if (this.#timer !== null || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const message = this.message();
      const text = JSON.stringify(message);
      if (text === this.#last) return;
      this.#last = text;
      this.#o.toIngresses(message);
    }, this.#o.debounceMs);
    this.#timer.unref?.();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** The live ingresses as the message lists them, from each one's hello. */
  #liveIngresses(): ClusterIngress[] {
    return this.#o.directory.entries('ingress').map((e) => {
      const info = e.peer.info;
      const name = typeof info['name'] === 'string' && info['name'] && info['name'].length <= 128 ? info['name'] : e.peer.id;
      const weight = typeof info['weight'] === 'number' && Number.isFinite(info['weight']) && info['weight'] > 0 ? info['weight'] : 1;
      const peerUrl = typeof info['peerUrl'] === 'string' && info['peerUrl'].length <= 2048 ? info['peerUrl'] : undefined;
      return { name, region: e.region.slice(0, 64), weight, draining: e.peer.draining === true, ...(peerUrl ? { peerUrl } : {}) };
    });
  }
}
