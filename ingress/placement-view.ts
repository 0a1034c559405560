/**
 * The ingress's view of the cluster: the last `cluster` message signaling sent (the live
 * ingresses, K, the peer key), and what follows from it for this ingress: which hosts it
 * attaches to (protocol/placement.ts) and which peers it may forward to. Until a `cluster`
 * message arrives the ingress is a single node: it attaches every host, as before clusters.
 */
import { assign, type ClusterIngress, type ClusterMessage } from '../protocol/index.ts';

/** This ingress as it introduces itself in its hello (and as placement must count it). */
export interface IngressSelf {
  name: string;
  region: string;
  weight: number;
  peerUrl?: string;
}

/** What `/_dcdn/health` shows of the cluster. */
export interface ClusterSummary {
  ingresses: Array<{ name: string; region: string; weight: number; draining: boolean; peerUrl?: string }>;
  /** min(K, live ingresses): how many ingresses each host attaches to. */
  attach: number;
  /** This ingress's region. */
  region: string;
}

export class PlacementView {
  readonly self: IngressSelf;
  #message: ClusterMessage | null = null;
  #ingresses: ClusterIngress[] = [];

  constructor(self: IngressSelf) {
    this.self = self;
  }

  /** Whether signaling ever sent a `cluster` message (else: attach every host). */
  get clustered(): boolean {
    return this.#message !== null;
  }

  /** The key forwarded requests are signed with; null before a `cluster` message. */
  get peerKey(): string | null {
    return this.#message?.peerKey ?? null;
  }

  /** The region of the signaling node this ingress is connected to. */
  get signalingRegion(): string | null {
    return this.#message?.region ?? null;
  }

  /** The live ingresses (this one included), as the last `cluster` message listed them. */
  get ingresses(): readonly ClusterIngress[] {
    return this.#ingresses;
  }

  /** Ingresses not draining: what K is capped by. */
  get live(): number {
    return this.#ingresses.filter((i) => !i.draining).length;
  }

  /**
   * Takes a new `cluster` message. The list is taken as is, plus this ingress if it is missing
   * (signaling lists it from our own hello, so only a race leaves it out, and an ingress that
   * counted itself out would drop every host for nothing).
   */
  update(message: ClusterMessage): void {
    this.#message = message;
    const list = message.ingresses.slice();
    if (!list.some((i) => i.name === this.self.name)) {
      list.push({ name: this.self.name, region: this.self.region, weight: this.self.weight, draining: false, ...(this.self.peerUrl ? { peerUrl: this.self.peerUrl } : {}) });
    }
    this.#ingresses = list;
  }

  /**
   * The ingresses host `hostKey` attaches to, best first; null when not clustered. A host's
   * region is its signaling node's (PeerInfo.region); a single signaling node tags none, and
   * then every host is in that node's region, which the `cluster` message names.
   */
  placement(hostKey: string, hostRegion: string | undefined): string[] | null {
    const m = this.#message;
    if (!m) return null;
    return assign(hostKey, hostRegion ?? m.region, this.#ingresses, m.attach);
  }

  /** Whether a host placed on `placement` (null: not clustered) is this ingress's to attach. */
  isMine(placement: string[] | null): boolean {
    return placement === null || placement.includes(this.self.name);
  }

  /** The peer named `name`, if it is live and takes forwards. */
  peer(name: string): ClusterIngress | undefined {
    const found = this.#ingresses.find((i) => i.name === name);
    return found && !found.draining && found.peerUrl && found.name !== this.self.name ? found : undefined;
  }

  summary(): ClusterSummary | null {
    const m = this.#message;
    if (!m) return null;
    return {
      ingresses: this.#ingresses.map((i) => ({ name: i.name, region: i.region, weight: i.weight, draining: i.draining, ...(i.peerUrl ? { peerUrl: i.peerUrl } : {}) })),
      attach: Math.min(m.attach, this.live),
      region: this.self.region,
    };
  }
}
