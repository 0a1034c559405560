import type { ErrorCode, Session, TransportKind } from '../protocol/index.ts';
import { OPERATOR_HOST, type HostTraits } from './host-traits.ts';

/** A live session to one host, as the pool tracks it. */
export interface HostConnection {
  /** The host's stable id (it survives signaling reconnects). */
  readonly id: string;
  /** A short name for logs and the `dcdn-host` header. */
  readonly name: string;
  readonly session: Session;
  readonly transport: TransportKind;
  /** The WebRTC stack of a `webrtc` session (null for WebSocket). */
  readonly rtc?: 'werift' | 'node-datachannel' | null;
  readonly info: Readonly<Record<string, unknown>>;
  /** Trust, scope, capabilities and draining (host-traits.ts); updated when signaling says so. */
  traits: HostTraits;
  readonly since: number;
  inFlight: number;
  served: number;
  consecutiveFailures: number;
  penalisedUntil: number;
}

/** Named limits of the pool. */
export interface HostPoolOptions {
  /** Requests one host may have in flight; past it the host is skipped. Default 128. */
  maxInFlightPerHost?: number;
  /** The same for a volunteer's host (a browser someone lent). Default 16. */
  maxInFlightPerVolunteer?: number;
  /** Consecutive failures after which a host is taken out of rotation. Default 3. */
  failureThreshold?: number;
  /** First time out of rotation; doubles with every further failure. Default 1000 ms. */
  penaltyBaseMs?: number;
  /** Longest time out of rotation. Default 60000 ms. */
  penaltyMaxMs?: number;
}

export type PickResult = { host: HostConnection } | { error: Extract<ErrorCode, 'INGRESS_NO_HOST' | 'INGRESS_HOSTS_BUSY'> };

/**
 * The hosts the ingress can send requests to. Each request goes to the host with the fewest
 * in flight; ties rotate. A host that fails repeatedly sits out for a growing back-off, but
 * never every host at once: when all are penalised, they are all used.
 */
export class HostPool {
  readonly #hosts = new Map<string, HostConnection>();
  readonly #opts: Required<HostPoolOptions>;
  #rotation = 0;

  constructor(options: HostPoolOptions = {}) {
    this.#opts = {
      maxInFlightPerHost: options.maxInFlightPerHost ?? 128,
      maxInFlightPerVolunteer: options.maxInFlightPerVolunteer ?? 16,
      failureThreshold: options.failureThreshold ?? 3,
      penaltyBaseMs: options.penaltyBaseMs ?? 1000,
      penaltyMaxMs: options.penaltyMaxMs ?? 60_000,
    };
  }

  get size(): number {
    return this.#hosts.size;
  }

  add(host: Omit<HostConnection, 'inFlight' | 'served' | 'consecutiveFailures' | 'penalisedUntil' | 'since' | 'traits'> & { traits?: HostTraits }): HostConnection {
    const entry: HostConnection = { ...host, traits: host.traits ?? OPERATOR_HOST, since: Date.now(), inFlight: 0, served: 0, consecutiveFailures: 0, penalisedUntil: 0 };
    this.#hosts.set(host.id, entry);
    return entry;
  }

  /** Removes a host if `session` is still the one registered (a newer session may have replaced it). */
  remove(id: string, session?: Session): void {
    const h = this.#hosts.get(id);
    if (h && (!session || h.session === session)) this.#hosts.delete(id);
  }

  get(id: string): HostConnection | undefined {
    return this.#hosts.get(id);
  }

  list(): HostConnection[] {
    return [...this.#hosts.values()];
  }

  /**
   * Chooses a host for a request, skipping those in `exclude` (already tried), drained ones and
   * those `eligible` rejects (a volunteer for an app not deployed `--volunteers`, a host without
   * a required capability).
   */
  pick(exclude: ReadonlySet<string> = new Set(), now = Date.now(), eligible: (h: HostConnection) => boolean = () => true): PickResult {
    const usable = this.list().filter((h) => !exclude.has(h.id) && !h.session.isClosed && !h.traits.draining && eligible(h));
    if (usable.length === 0) return { error: 'INGRESS_NO_HOST' };
    const healthy = usable.filter((h) => h.penalisedUntil <= now);
    const pool = healthy.length > 0 ? healthy : usable;
    const n = pool.length;
    const start = this.#rotation++ % n;
    let best: HostConnection | undefined;
    for (let i = 0; i < n; i++) {
      const h = pool[(start + i) % n]!;
      if (h.inFlight >= (h.traits.volunteer ? this.#opts.maxInFlightPerVolunteer : this.#opts.maxInFlightPerHost)) continue;
      if (!best || h.inFlight < best.inFlight) best = h;
    }
    return best ? { host: best } : { error: 'INGRESS_HOSTS_BUSY' };
  }

  reportSuccess(host: HostConnection): void {
    host.served++;
    host.consecutiveFailures = 0;
    host.penalisedUntil = 0;
  }

  /** Counts a failure the host is to blame for; returns the penalty in ms (0 if none). */
  reportFailure(host: HostConnection, now = Date.now()): number {
    host.consecutiveFailures++;
    const over = host.consecutiveFailures - this.#opts.failureThreshold;
    if (over < 0) return 0;
    const penalty = Math.min(this.#opts.penaltyMaxMs, this.#opts.penaltyBaseMs * 2 ** over);
    host.penalisedUntil = now + penalty;
    return penalty;
  }
}
