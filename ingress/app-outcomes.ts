/**
 * Who is to blame when an app's requests fail: the app, or one host that runs it.
 *
 * A failure the host reports as the app's (`HOST_HANDLER_ERROR` and the other codes in
 * `APP_FAILURE_CODES`) is counted against the app, never directly against the host: one app's
 * bug must not take shared hosts out of rotation. But a host can forge such codes, so the
 * outcomes are also kept per (app, host), over each host's last `outcomeWindow` requests of the
 * app: a host whose failure rate for an app is more than `outcomeMaxExcess` above the rate of
 * the other hosts serving the same app (over at least `outcomeMinSamples` requests on each side)
 * is an outlier, and the pool takes it out. An app that fails on every host alike blames nobody
 * but the app.
 */

/** Named thresholds of outcome-based scoring. */
export interface AppOutcomeOptions {
  /** Outcomes remembered per (app, host): the last this many requests. Default 50. */
  outcomeWindow: number;
  /** Requests a host (and, together, its peers) must have served of an app before it is judged. Default 10. */
  outcomeMinSamples: number;
  /** How far (0..1) a host's failure rate may exceed its peers' for the same app. Default 0.5. */
  outcomeMaxExcess: number;
}

export const APP_OUTCOME_DEFAULTS: AppOutcomeOptions = { outcomeWindow: 50, outcomeMinSamples: 10, outcomeMaxExcess: 0.5 };

/** What the ingress counts against one app (`/_dcdn/health` → `appFailures`). */
export interface AppFailureCount {
  /** Failures of the app's requests that the app was blamed for, by code. */
  byCode: Record<string, number>;
  total: number;
  /** When the last one happened (ISO). */
  last: string | null;
}

/** The last outcomes of one (app, host), as a ring of booleans (true = failed). */
class Window {
  readonly #ring: boolean[] = [];
  #next = 0;
  failures = 0;

  constructor(readonly size: number) {}

  get count(): number {
    return this.#ring.length;
  }

  push(failed: boolean): void {
    if (this.#ring.length < this.size) {
      this.#ring.push(failed);
    } else {
      if (this.#ring[this.#next]) this.failures--;
      this.#ring[this.#next] = failed;
      this.#next = (this.#next + 1) % this.size;
    }
    if (failed) this.failures++;
  }

  clear(): void {
    this.#ring.length = 0;
    this.#next = 0;
    this.failures = 0;
  }
}

/** Most apps tracked; past it the oldest is forgotten (app names come from the router, but bound it anyway). */
const MAX_APPS = 1024;

/**
 * Per-app failure counts and per-(app, host) outcome windows. The pool owns one; see the file
 * comment for the rule.
 */
export class AppOutcomes {
  readonly #opts: AppOutcomeOptions;
  readonly #counts = new Map<string, AppFailureCount>();
  /** app → host id → window. */
  readonly #windows = new Map<string, Map<string, Window>>();

  constructor(options: Partial<AppOutcomeOptions> = {}) {
    this.#opts = { ...APP_OUTCOME_DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) (this.#opts as unknown as Record<string, number>)[k] = v;
  }

  /** A request of `app` served well by `hostId`. */
  success(app: string, hostId: string): void {
    this.#window(app, hostId).push(false);
  }

  /**
   * A request of `app` on `hostId` failed with an app's code: counted against the app. Returns
   * whether the host is now an outlier for this app (its answers fail far more than its peers').
   */
  failure(app: string, hostId: string, code: string, now = Date.now()): boolean {
    let count = this.#counts.get(app);
    if (!count) {
      if (this.#counts.size >= MAX_APPS) this.#counts.delete(this.#counts.keys().next().value!);
      count = { byCode: {}, total: 0, last: null };
      this.#counts.set(app, count);
    }
    count.byCode[code] = (count.byCode[code] ?? 0) + 1;
    count.total++;
    count.last = new Date(now).toISOString();
    const own = this.#window(app, hostId);
    own.push(true);
    return this.#isOutlier(app, hostId, own);
  }

  /** A host was taken out: it starts a fresh window for every app, so it is judged again on new answers. */
  reset(hostId: string): void {
    for (const hosts of this.#windows.values()) hosts.get(hostId)?.clear();
  }

  /** Forgets a host's windows (it is gone for good). */
  forget(hostId: string): void {
    for (const [app, hosts] of this.#windows) {
      hosts.delete(hostId);
      if (hosts.size === 0) this.#windows.delete(app);
    }
  }

  /** The failures counted against each app. */
  counts(): Record<string, AppFailureCount> {
    return Object.fromEntries([...this.#counts].map(([app, c]) => [app, { byCode: { ...c.byCode }, total: c.total, last: c.last }]));
  }

  /** A host's failure rate for an app and its peers', for logs; null when either has too few samples. */
  rates(app: string, hostId: string): { host: number; peers: number } | null {
    const hosts = this.#windows.get(app);
    const own = hosts?.get(hostId);
    if (!hosts || !own || own.count < this.#opts.outcomeMinSamples) return null;
    let n = 0;
    let failed = 0;
    for (const [id, w] of hosts) {
      if (id === hostId) continue;
      n += w.count;
      failed += w.failures;
    }
    if (n < this.#opts.outcomeMinSamples) return null;
    return { host: own.failures / own.count, peers: failed / n };
  }

  #isOutlier(app: string, hostId: string, own: Window): boolean {
    if (own.count < this.#opts.outcomeMinSamples) return false;
    const r = this.rates(app, hostId);
    return r !== null && r.host - r.peers > this.#opts.outcomeMaxExcess;
  }

  #window(app: string, hostId: string): Window {
    let hosts = this.#windows.get(app);
    if (!hosts) {
      if (this.#windows.size >= MAX_APPS) this.#windows.delete(this.#windows.keys().next().value!);
      hosts = new Map();
      this.#windows.set(app, hosts);
    }
    let w = hosts.get(hostId);
    if (!w) {
      w = new Window(Math.max(1, Math.floor(this.#opts.outcomeWindow)));
      hosts.set(hostId, w);
    }
    return w;
  }
}
