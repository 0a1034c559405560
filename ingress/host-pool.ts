import type { ErrorCode, Session, TransportKind } from '../protocol/index.ts';
import { AppOutcomes, type AppFailureCount, type AppOutcomeOptions } from './app-outcomes.ts';
import { OPERATOR_HOST, type HostTraits } from './host-traits.ts';
import { POOL_DEFAULTS } from './pool-defaults.ts';

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
  /** Failures in a row since the host last answered well (kept across its sessions). */
  consecutiveFailures: number;
  /** Until when the host sits out of rotation (epoch ms; kept across its sessions). */
  penalisedUntil: number;
}

/** Named limits of the pool (and of outcome-based scoring, app-outcomes.ts). */
export interface HostPoolOptions extends Partial<AppOutcomeOptions> {
  /** Requests one host may have in flight; past it the host is skipped. Default 128. */
  maxInFlightPerHost?: number;
  /** The same for a volunteer's host (a browser someone lent). Default 16. */
  maxInFlightPerVolunteer?: number;
  /** Failures in a row after which a host is taken out of rotation. Default 3. */
  failureThreshold?: number;
  /** First time out of rotation; doubles with every further penalty. Default 1000 ms. */
  penaltyBaseMs?: number;
  /** Longest time out of rotation. Default 60000 ms. */
  penaltyMaxMs?: number;
  /**
   * A host's penalty level (which sets how long its next penalty is) drops by one for every
   * this long without a failure. Default 60000 ms.
   */
  penaltyDecayMs?: number;
}

// In a module of its own so that `dcdn --help` can print them without loading the pool.
export { POOL_DEFAULTS } from './pool-defaults.ts';

export type PickResult = { host: HostConnection } | { error: Extract<ErrorCode, 'INGRESS_NO_HOST' | 'INGRESS_HOSTS_BUSY'> };

/** What the pool remembers of a host id, whether or not it is connected right now. */
export interface HostStanding {
  /** Failures in a row since the last good answer. */
  failures: number;
  /** Penalties not yet forgiven: the next one lasts `penaltyBaseMs * 2^level`. */
  level: number;
  /** Until when the host is out of rotation (epoch ms; 0 or past means not). */
  penalisedUntil: number;
}

interface Record_ extends HostStanding {
  /** When the level last changed (a penalty or a decay step). */
  levelAt: number;
}

/**
 * The hosts the ingress can send requests to. Each request goes to the host with the fewest
 * in flight; ties rotate.
 *
 * A host that fails repeatedly sits out for a growing back-off: after `failureThreshold`
 * failures in a row it is penalised for `penaltyBaseMs`, and each further penalty doubles
 * that, up to `penaltyMaxMs`. The record is kept per host id, so a host whose session is
 * closed for breaking protocol comes back with its record, not a clean slate; the level decays
 * by one per `penaltyDecayMs` without a failure. Never every host is out at once: when every
 * usable host is penalised, the least penalised (the one whose penalty ends first) serves.
 */
export class HostPool {
  readonly #hosts = new Map<string, HostConnection>();
  readonly #records = new Map<string, Record_>();
  readonly #opts: Required<HostPoolOptions>;
  readonly #outcomes: AppOutcomes;
  #rotation = 0;

  constructor(options: HostPoolOptions = {}) {
    this.#opts = { ...POOL_DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) (this.#opts as Record<string, number>)[k] = v;
    this.#outcomes = new AppOutcomes(this.#opts);
  }

  get size(): number {
    return this.#hosts.size;
  }

  /** Registers a ready session. A host id seen before keeps its failures and penalty. */
  add(host: Omit<HostConnection, 'inFlight' | 'served' | 'consecutiveFailures' | 'penalisedUntil' | 'since' | 'traits'> & { traits?: HostTraits }): HostConnection {
    const record = this.#record(host.id);
    const entry: HostConnection = {
      ...host,
      traits: host.traits ?? OPERATOR_HOST,
      since: Date.now(),
      inFlight: 0,
      served: 0,
      consecutiveFailures: record.failures,
      penalisedUntil: record.penalisedUntil,
    };
    this.#hosts.set(host.id, entry);
    return entry;
  }

  /** Removes a host if `session` is still the one registered (a newer session may have replaced it). */
  remove(id: string, session?: Session): void {
    const h = this.#hosts.get(id);
    if (h && (!session || h.session === session)) this.#hosts.delete(id);
    // A gone host's outcome windows go with it, unless it is under a penalty level (then they
    // stay, so a reconnect is not a clean slate).
    if (!this.#hosts.has(id) && !this.#records.get(id)?.level) this.#outcomes.forget(id);
    this.#prune();
  }

  get(id: string): HostConnection | undefined {
    return this.#hosts.get(id);
  }

  list(): HostConnection[] {
    return [...this.#hosts.values()];
  }

  /** What the pool holds against a host id (connected or not). */
  standing(id: string, now = Date.now()): HostStanding {
    const r = this.#records.get(id);
    if (!r) return { failures: 0, level: 0, penalisedUntil: 0 };
    this.#decay(r, now);
    return { failures: r.failures, level: r.level, penalisedUntil: r.penalisedUntil };
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
    if (healthy.length === 0) {
      // Everyone is penalised: a penalised host beats no host, and the one whose penalty ends
      // first is the least suspect.
      const byPenalty = usable.sort((a, b) => a.penalisedUntil - b.penalisedUntil || a.inFlight - b.inFlight);
      const host = byPenalty.find((h) => h.inFlight < this.#limit(h));
      return host ? { host } : { error: 'INGRESS_HOSTS_BUSY' };
    }
    const n = healthy.length;
    const start = this.#rotation++ % n;
    let best: HostConnection | undefined;
    for (let i = 0; i < n; i++) {
      const h = healthy[(start + i) % n]!;
      if (h.inFlight >= this.#limit(h)) continue;
      if (!best || h.inFlight < best.inFlight) best = h;
    }
    return best ? { host: best } : { error: 'INGRESS_HOSTS_BUSY' };
  }

  /**
   * The host answered well: its run of failures ends and a current penalty is lifted. Its level
   * stays (it decays with time), so a host that fails again soon sits out longer than before.
   */
  reportSuccess(host: HostConnection, app?: string): void {
    host.served++;
    if (app !== undefined) this.#outcomes.success(app, host.id);
    const r = this.#records.get(host.id);
    if (r) {
      r.failures = 0;
      r.penalisedUntil = 0;
    }
    host.consecutiveFailures = 0;
    host.penalisedUntil = 0;
  }

  /**
   * A request of `app` failed with an app's own code (its handler threw, timed out, ...): counted
   * against the app, not the host, unless the host's answers for this app fail far more often
   * than its peers' (app-outcomes.ts), which takes it out of rotation at once as for a session
   * fault. Returns the penalty in ms (0 if none), and the rates that decided it.
   */
  reportAppFailure(host: HostConnection, app: string, code: string, now = Date.now()): { penaltyMs: number; rates: { host: number; peers: number } | null } {
    if (!this.#outcomes.failure(app, host.id, code, now)) return { penaltyMs: 0, rates: null };
    const rates = this.#outcomes.rates(app, host.id);
    this.#outcomes.reset(host.id);
    return { penaltyMs: this.reportSessionFault(host.id, now), rates };
  }

  /** Failures counted against each app (`/_dcdn/health` → `appFailures`). */
  appFailures(): Record<string, AppFailureCount> {
    return this.#outcomes.counts();
  }

  /** Counts a failure the host is to blame for; returns the penalty in ms (0 if none). */
  reportFailure(host: HostConnection | string, now = Date.now()): number {
    const id = typeof host === 'string' ? host : host.id;
    const r = this.#record(id);
    this.#decay(r, now);
    r.failures++;
    return r.failures >= this.#opts.failureThreshold ? this.#penalise(id, r, now) : (this.#sync(id, r), 0);
  }

  /**
   * The host broke protocol badly enough that its session was closed (undecodable bytes, an
   * invalid session frame): penalised at once, whatever its run of failures. Returns the penalty
   * in ms.
   */
  reportSessionFault(id: string, now = Date.now()): number {
    const r = this.#record(id);
    this.#decay(r, now);
    r.failures = Math.max(r.failures + 1, this.#opts.failureThreshold);
    return this.#penalise(id, r, now);
  }

  #penalise(id: string, r: Record_, now: number): number {
    const penalty = Math.min(this.#opts.penaltyMaxMs, this.#opts.penaltyBaseMs * 2 ** Math.min(r.level, 30));
    r.level++;
    r.levelAt = now;
    r.penalisedUntil = Math.max(r.penalisedUntil, now + penalty);
    this.#sync(id, r);
    return penalty;
  }

  #limit(h: HostConnection): number {
    return h.traits.volunteer ? this.#opts.maxInFlightPerVolunteer : this.#opts.maxInFlightPerHost;
  }

  #record(id: string): Record_ {
    let r = this.#records.get(id);
    if (!r) {
      r = { failures: 0, level: 0, penalisedUntil: 0, levelAt: 0 };
      this.#records.set(id, r);
    }
    return r;
  }

  /** One level forgiven per `penaltyDecayMs` since the level last changed. */
  #decay(r: Record_, now: number): void {
    if (r.level === 0) return;
    const steps = Math.floor((now - r.levelAt) / this.#opts.penaltyDecayMs);
    if (steps <= 0) return;
    r.level = Math.max(0, r.level - steps);
    r.levelAt += steps * this.#opts.penaltyDecayMs;
  }

  #sync(id: string, r: Record_): void {
    const h = this.#hosts.get(id);
    if (!h) return;
    h.consecutiveFailures = r.failures;
    h.penalisedUntil = r.penalisedUntil;
  }

  /** Forgets clean records of hosts that are gone, so churning ids can't grow the map for ever. */
  #prune(now = Date.now()): void {
    if (this.#records.size <= this.#hosts.size + 64) return;
    for (const [id, r] of this.#records) {
      if (this.#hosts.has(id)) continue;
      this.#decay(r, now);
      if (r.level === 0 && r.penalisedUntil <= now) this.#records.delete(id);
    }
  }
}
