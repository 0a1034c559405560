/**
 * Signaling's Prometheus metrics (prom-client) and its `/metrics` endpoint. Same conventions as
 * the ingress's (ingress/metrics.ts): `dcdn_` prefix, base units, `_total` counters, bounded
 * labels (roles, host kinds, SIG_ codes). The endpoint takes an operator token, or the fixed
 * `--metrics-token`; signaling owns every path of its port, so no `/_dcdn/` detour is needed.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { SignalingError } from '../protocol/index.ts';
import { bearerToken, sendError } from './http-auth.ts';
import type { PeerInfo } from '../protocol/index.ts';
import { verifyToken } from './token.ts';

/** Where signaling serves its metrics. */
export const METRICS_PATH = '/metrics';

/** What signaling's metrics need to know. */
export interface SignalingMetricsOptions {
  /** Default true. */
  enabled?: boolean;
  /** Node process metrics (CPU, memory, event loop lag) too. Default true. */
  processMetrics?: boolean;
  /** A fixed bearer token that may read `/metrics` besides operator tokens (`--metrics-token`). */
  token?: string;
}

/** Signaling's metrics and the registry that renders them. */
export class SignalingMetrics {
  readonly registry = new Registry();
  readonly #relayed: Counter;
  readonly #failures: Counter<'code'>;
  readonly #rateLimited: Counter<'limit'>;
  readonly #cronRuns: Counter<'outcome' | 'trigger'>;

  constructor(peers: () => PeerInfo[], options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    new Gauge({
      name: 'dcdn_signaling_peers',
      help: 'Peers that said hello, by role (host, ingress) and kind (operator, volunteer; ingresses are operator)',
      labelNames: ['role', 'kind'],
      registers,
      collect() {
        this.reset();
        for (const role of ['host', 'ingress']) for (const kind of ['operator', 'volunteer']) if (role === 'host' || kind === 'operator') this.set({ role, kind }, 0);
        for (const p of peers()) this.inc({ role: p.role, kind: p.volunteer ? 'volunteer' : 'operator' });
      },
    });
    this.#relayed = new Counter({ name: 'dcdn_signaling_relayed_messages_total', help: 'Signals (offers, answers, candidates, transport choices) relayed between an ingress and a host', registers });
    this.#failures = new Counter({ name: 'dcdn_signaling_refusals_total', help: 'Connections refused before the upgrade or closed by signaling, by SIG_ code', labelNames: ['code'], registers });
    this.#rateLimited = new Counter({
      name: 'dcdn_rate_limited_total',
      help: 'Refusals for going over a rate limit: messages per connection (messages) or volunteer hosts per address (volunteers_per_address)',
      labelNames: ['limit'],
      registers,
    });
    this.#cronRuns = new Counter({
      name: 'dcdn_signaling_cron_runs_total',
      help: 'Scheduled runs this node asked for (cron ticks it claimed, dcdn cron trigger), by outcome (ok, or the error code) and trigger (schedule, manual)',
      labelNames: ['outcome', 'trigger'],
      registers,
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'dcdn_' });
  }

  relayed(): void {
    this.#relayed.inc();
  }

  /** A scheduled run this node asked for ended: `ok`, or its error code. */
  cronRun(outcome: string, trigger: 'schedule' | 'manual'): void {
    this.#cronRuns.inc({ outcome, trigger });
  }

  /** A connection closed or an upgrade refused with `code`. */
  refused(code: string, before: 'upgrade' | 'connection'): void {
    this.#failures.inc({ code });
    if (code === 'SIG_RATE_LIMITED') this.#rateLimited.inc({ limit: before === 'upgrade' ? 'volunteers_per_address' : 'messages' });
  }

  renderJson(): Promise<unknown> {
    return this.registry.getMetricsAsJSON();
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Registers `GET /metrics` for operator tokens signed with `secret`, or the fixed `token`. */
export function registerMetricsRoute(app: FastifyInstance, metrics: SignalingMetrics, secret: string, token: string | undefined): void {
  const fixed = token ? Buffer.from(token) : null;
  app.get(METRICS_PATH, async (request, reply) => {
    try {
      const given = bearerToken(request);
      const matchesFixed = fixed !== null && Buffer.byteLength(given) === fixed.length && timingSafeEqual(Buffer.from(given), fixed);
      if (!matchesFixed) verifyToken(secret, given, ['operator']);
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      return sendError(reply, err.code, err.message);
    }
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}
