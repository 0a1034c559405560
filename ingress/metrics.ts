/**
 * The ingress's Prometheus metrics (prom-client), named after Prometheus' conventions: `dcdn_`
 * prefix, base units (seconds, bytes), `_total` on counters. Every label has a bounded set of
 * values: apps are the deployed ones (a request for an unknown app is counted under `-`),
 * statuses are HTTP statuses, codes come from protocol/errors.ts, transports and host kinds are
 * enumerations. No URL, client or host id is ever a label. docs/observability.md lists them.
 *
 * Each ingress has its own registry, so several ingresses in one process (tests, `dcdn up`)
 * never mix their counts; process metrics are added to it when asked.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WATERFALL_SEGMENTS, type ErrorCode, type Waterfall } from '../protocol/index.ts';
import type { HostPool } from './host-pool.ts';

/** Latency buckets in seconds: 1 ms (a loopback hello world) to 60 s (the idle timeout). */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** KV operation buckets in seconds: SQLite answers in tens of microseconds, Redis over a LAN in a millisecond. */
const KV_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

/** Segment buckets in seconds: a hop of a loopback hello world takes 10-500 µs; a slow handler seconds. */
const SEGMENT_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5];

/** The label value for requests that reached no app (rejected before routing, unknown app, no control plane). */
export const NO_APP = '-';
/** The transport label of a request no host was tried for. */
export const NO_TRANSPORT = 'none';

/** Which sandbox failures an answer's code reports (as the ingress sees them: with a request in the sandbox). */
const SANDBOX_KILLS: Partial<Record<ErrorCode, string>> = {
  HOST_SANDBOX_CRASHED: 'crashed',
  HOST_HANDLER_TIMEOUT: 'time_limit',
  HOST_HANDLER_CPU_LIMIT: 'cpu_limit',
};

/** One finished request, as the access log sees it. */
export interface RequestRecord {
  app: string;
  status: number;
  transport: string;
  seconds: number;
  bytesIn: number;
  bytesOut: number;
  code: ErrorCode | undefined;
}

/** What the metrics read at scrape time rather than count as they happen. */
export interface IngressGauges {
  pool: HostPool;
  inFlight(): number;
}

/** The ingress's metrics and the registry that renders them. */
export class IngressMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'app' | 'status' | 'transport'>;
  readonly #duration: Histogram<'app' | 'transport'>;
  readonly #bytesIn: Counter<'app'>;
  readonly #bytesOut: Counter<'app'>;
  readonly #errors: Counter<'app' | 'code'>;
  readonly #kills: Counter<'app' | 'reason'>;
  readonly #sessionsOpened: Counter<'transport'>;
  readonly #sessionsFailed: Counter<'transport'>;
  readonly #fallbacks: Counter;
  readonly #kvOps: Counter<'op' | 'outcome'>;
  readonly #kvDuration: Histogram<'op'>;
  readonly #sqlCalls: Counter<'mode' | 'outcome'>;
  readonly #sqlDuration: Histogram<'mode'>;
  readonly #peerForwards: Counter<'direction' | 'outcome'>;
  readonly #segments: Histogram<'segment' | 'transport'>;
  /**
   * The labelled children a request touches, by app, status and transport: prom-client hashes
   * the label object on every call otherwise, which was most of the per-request cost.
   */
  readonly #children = new Map<string, { requests: Counter.Internal; duration: Histogram.Internal<'app' | 'transport'>; bytesIn: Counter.Internal; bytesOut: Counter.Internal }>();

  constructor(gauges: IngressGauges, options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.#requests = new Counter({ name: 'dcdn_http_requests_total', help: 'HTTP requests answered, by app, status and the transport of the host that answered (none: no host was tried)', labelNames: ['app', 'status', 'transport'], registers });
    this.#duration = new Histogram({ name: 'dcdn_http_request_duration_seconds', help: 'Time from the request reaching the ingress to the end of its answer', labelNames: ['app', 'transport'], buckets: DURATION_BUCKETS, registers });
    this.#bytesIn = new Counter({ name: 'dcdn_http_request_body_bytes_total', help: 'Request body bytes read from clients', labelNames: ['app'], registers });
    this.#bytesOut = new Counter({ name: 'dcdn_http_response_body_bytes_total', help: 'Response body bytes forwarded to clients (error bodies the ingress writes itself not included)', labelNames: ['app'], registers });
    this.#errors = new Counter({ name: 'dcdn_http_errors_total', help: 'Requests answered (or cut) with a dcdn error code, by app and code', labelNames: ['app', 'code'], registers });
    this.#kills = new Counter({ name: 'dcdn_sandbox_kills_total', help: "Requests whose app sandbox crashed or was recycled over a time or CPU limit while they were in it", labelNames: ['app', 'reason'], registers });
    this.#sessionsOpened = new Counter({ name: 'dcdn_sessions_opened_total', help: 'Sessions to hosts that became ready, by transport', labelNames: ['transport'], registers });
    this.#sessionsFailed = new Counter({ name: 'dcdn_sessions_failed_total', help: 'Attempts to open a session to a host that did not end in a ready session, by transport', labelNames: ['transport'], registers });
    this.#fallbacks = new Counter({ name: 'dcdn_websocket_fallbacks_total', help: 'Times a host was offered the WebSocket transport because its data channel could not be opened', registers });
    this.#kvOps = new Counter({ name: 'dcdn_kv_operations_total', help: 'KV operations served for handlers, by operation and outcome (ok or the KV_ error code)', labelNames: ['op', 'outcome'], registers });
    this.#kvDuration = new Histogram({ name: 'dcdn_kv_operation_duration_seconds', help: 'Time to serve a KV operation, including streaming its value', labelNames: ['op'], buckets: KV_BUCKETS, registers });
    this.#sqlCalls = new Counter({ name: 'dcdn_sql_calls_total', help: 'SQL calls served for handlers, by mode (batch, exec; invalid when unparseable) and outcome (ok or the SQL_ error code)', labelNames: ['mode', 'outcome'], registers });
    this.#sqlDuration = new Histogram({ name: 'dcdn_sql_call_duration_seconds', help: 'Time to serve a SQL call: its transaction and sending the result', labelNames: ['mode'], buckets: KV_BUCKETS, registers });
    this.#peerForwards = new Counter({
      name: 'dcdn_peer_forwards_total',
      help: 'Cluster forwarding between ingresses. out: tries to hand a request to a peer (answered, refused: the peer had no host either and another was asked, unreachable, failed: timeout or cut). in: requests on the peer port (accepted, forbidden: no valid dcdn-peer signature)',
      labelNames: ['direction', 'outcome'],
      registers,
    });
    this.#segments = new Histogram({
      name: 'dcdn_request_segment_seconds',
      help: 'Where timed requests spent their time, by hop (segment, docs/performance.md "Waterfall") and transport; only requests sampled (--timing-sample) or timed for dcdn tail --timing. A one-way channel segment can be slightly negative (clock-offset error); it is counted in the lowest bucket',
      labelNames: ['segment', 'transport'],
      buckets: SEGMENT_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'dcdn_http_requests_in_flight',
      help: 'Requests being forwarded right now',
      registers,
      collect() {
        this.set(gauges.inFlight());
      },
    });
    new Gauge({
      name: 'dcdn_hosts',
      help: 'Hosts with a ready session, by state (serving, penalised, draining), kind (operator, volunteer) and transport',
      labelNames: ['state', 'kind', 'transport'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const h of gauges.pool.list()) {
          const state = h.traits.draining ? 'draining' : h.penalisedUntil > now ? 'penalised' : 'serving';
          this.inc({ state, kind: h.traits.volunteer ? 'volunteer' : 'operator', transport: h.transport });
        }
      },
    });
    const rtts = (transport: string) => gauges.pool.list().filter((h) => h.transport === transport && h.session.rttMs !== undefined).map((h) => h.session.rttMs! / 1000).sort((a, b) => a - b);
    // The median and the longest of the hosts' last RTTs, by transport: one gauge each.
    const rttGauge = (name: string, help: string, pick: (sorted: number[]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['transport'],
        registers,
        collect() {
          this.reset();
          for (const t of ['webrtc', 'websocket']) {
            const r = rtts(t);
            if (r.length) this.set({ transport: t }, pick(r));
          }
        },
      });
    rttGauge('dcdn_channel_rtt_median_seconds', "Median of the hosts' last heartbeat round-trip time, by transport", (r) => r[Math.floor((r.length - 1) / 2)]!);
    rttGauge('dcdn_channel_rtt_max_seconds', "Longest of the hosts' last heartbeat round-trip time, by transport", (r) => r[r.length - 1]!);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'dcdn_' });
  }

  /** Counts one answered request (called once, when its connection is done with it). */
  request(r: RequestRecord): void {
    const app = r.app || NO_APP;
    const key = `${app}\0${r.status}\0${r.transport}`;
    let c = this.#children.get(key);
    if (!c) {
      c = {
        requests: this.#requests.labels({ app, status: String(r.status), transport: r.transport }),
        duration: this.#duration.labels({ app, transport: r.transport }),
        bytesIn: this.#bytesIn.labels({ app }),
        bytesOut: this.#bytesOut.labels({ app }),
      };
      this.#children.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(r.seconds);
    if (r.bytesIn > 0) c.bytesIn.inc(r.bytesIn);
    if (r.bytesOut > 0) c.bytesOut.inc(r.bytesOut);
    if (r.code) {
      this.#errors.inc({ app, code: r.code });
      const kill = SANDBOX_KILLS[r.code];
      if (kill) this.#kills.inc({ app, reason: kill });
    }
  }

  /** One SQL call served: its mode, its error code or null, its duration. */
  sql(mode: string, code: string | null, seconds: number): void {
    this.#sqlCalls.inc({ mode, outcome: code ?? 'ok' });
    this.#sqlDuration.observe({ mode }, seconds);
  }

  /** One timed request's waterfall (µs per segment, request-timing.ts). */
  segments(w: Waterfall, transport: string): void {
    for (const segment of WATERFALL_SEGMENTS) this.#segments.observe({ segment, transport }, Math.max(0, w[segment]) / 1e6);
  }

  /** A session event from the host connector. */
  session(event: 'opened' | 'failed' | 'fallback', transport: string): void {
    if (event === 'opened') this.#sessionsOpened.inc({ transport });
    else if (event === 'failed') this.#sessionsFailed.inc({ transport });
    else this.#fallbacks.inc();
  }

  /** One KV operation served: its kind (`invalid` when it could not be parsed), its error code or null, its duration. */
  kv(op: string, code: string | null, seconds: number): void {
    this.#kvOps.inc({ op, outcome: code ?? 'ok' });
    this.#kvDuration.observe({ op }, seconds);
  }

  /** One forwarding try to a peer (`out`), or one request on the peer port (`in`). */
  peerForward(direction: 'out', outcome: 'answered' | 'refused' | 'unreachable' | 'failed'): void;
  peerForward(direction: 'in', outcome: 'accepted' | 'forbidden'): void;
  peerForward(direction: 'in' | 'out', outcome: string): void {
    this.#peerForwards.inc({ direction, outcome });
  }

  /** The metrics as prom-client's JSON (families with their label sets and values). */
  renderJson(): Promise<unknown> {
    return this.registry.getMetricsAsJSON();
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
