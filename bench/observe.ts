/**
 * Section `observe`: what seeing the network costs. Hello-world req/s at 50 connections through
 * dcdn over werift (one tab) for three setups side by side, taking turns within each
 * repetition: an ingress built without Prometheus metrics, the default ingress (metrics on),
 * and the default ingress with a `dcdn tail` subscriber attached to `/_dcdn/tail` reading every
 * event. Target: each under 5 % (docs/observability.md).
 */
import { WebSocket } from 'ws';
import { load, type LoadResult } from './http-load.ts';
import { progress } from './progress.ts';
import { median } from './stats.ts';
import { startTarget, type Target, type TargetSpec } from './targets.ts';

export interface ObserveConfig {
  reps: number;
  /** Length of each autocannon run, whole seconds. */
  seconds: number;
}

export const OBSERVE_TARGETS: readonly TargetSpec[] = [
  { key: 'obs-metrics-off', label: 'dcdn werift, 1 tab, metrics off', kind: 'dcdn', transport: 'webrtc', rtc: 'werift', hosts: 1, metrics: false },
  { key: 'obs-metrics-on', label: 'dcdn werift, 1 tab, metrics on', kind: 'dcdn', transport: 'webrtc', rtc: 'werift', hosts: 1, metrics: true },
];

type Variant = 'metricsOff' | 'metricsOn' | 'metricsAndTail';
const VARIANTS: readonly Variant[] = ['metricsOff', 'metricsOn', 'metricsAndTail'];

export interface ObserveResults {
  config: ObserveConfig;
  runs: Record<Variant, LoadResult[]>;
  /** Events the tail received in each of its runs (every request should be one). */
  tailEvents: number[];
  tailDropped: number[];
}

export interface ObserveFigures {
  rps: Record<Variant, number | null>;
  /** Req/s lost to metrics, in % of the metrics-off figure. */
  metricsCostPct: number | null;
  /** Req/s lost to an attached tail, in % of the metrics-on figure. */
  tailCostPct: number | null;
  /** Both together, in % of the metrics-off figure. */
  totalCostPct: number | null;
  failures: number;
}

export async function runObserveSection(config: ObserveConfig): Promise<ObserveResults> {
  const targets: Target[] = [];
  try {
    for (const spec of OBSERVE_TARGETS) targets.push(await startTarget(spec));
    const [off, on] = targets.map((t) => {
      if ('skipped' in t) throw new Error(`${t.spec.label} cannot run: ${t.skipped}`);
      return t;
    }) as [Extract<Target, { url: string }>, Extract<Target, { url: string }>];
    if (!on.operatorToken) throw new Error('the metrics-on target printed no operator token');
    const results: ObserveResults = { config, runs: { metricsOff: [], metricsOn: [], metricsAndTail: [] }, tailEvents: [], tailDropped: [] };
    for (const t of [off, on]) await load(`${t.url}/`, 10, 1);
    progress(`observe: warmed up`);
    for (let rep = 0; rep < config.reps; rep++) {
      const turn = VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length]!);
      for (const variant of turn) {
        let r: LoadResult;
        if (variant === 'metricsOff') r = await load(`${off.url}/`, 50, config.seconds);
        else if (variant === 'metricsOn') r = await load(`${on.url}/`, 50, config.seconds);
        else {
          const tail = await attachTail(on.url, on.operatorToken);
          try {
            r = await load(`${on.url}/`, 50, config.seconds);
          } finally {
            const counts = await tail.detach();
            results.tailEvents.push(counts.events);
            results.tailDropped.push(counts.dropped);
          }
        }
        results.runs[variant].push(r);
        progress(`observe rep ${rep + 1}/${config.reps} ${variant}: ${r.rps.toFixed(0)} req/s${r.failures ? `, ${r.failures} FAILED` : ''}`);
      }
    }
    return results;
  } finally {
    await Promise.all(targets.map((t) => ('stop' in t ? t.stop() : undefined)));
  }
}

/** A `dcdn tail` subscriber reading every event, as the CLI would (JSON parsed, nothing printed). */
async function attachTail(base: string, token: string): Promise<{ detach(): Promise<{ events: number; dropped: number }> }> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/_dcdn/tail`, { headers: { authorization: `Bearer ${token}` } });
  let events = 0;
  let dropped = 0;
  let hello!: () => void;
  const ready = new Promise<void>((r) => (hello = r));
  ws.on('message', (data) => {
    const e = JSON.parse(String(data)) as { type: string; count?: number };
    if (e.type === 'hello') hello();
    else if (e.type === 'request') events++;
    else if (e.type === 'dropped') dropped += e.count ?? 0;
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await ready;
  return {
    async detach() {
      // The last events of the run may still be on their way: a short settle, bounded.
      await new Promise((r) => setTimeout(r, 200));
      ws.close();
      return { events, dropped };
    },
  };
}

export function observeFigures(r: ObserveResults): ObserveFigures {
  const rps = Object.fromEntries(VARIANTS.map((v) => [v, median(r.runs[v].map((x) => x.rps))])) as Record<Variant, number | null>;
  const cost = (with_: number | null, without: number | null) => (with_ != null && without != null && without > 0 ? Math.round((1 - with_ / without) * 1000) / 10 : null);
  return {
    rps,
    metricsCostPct: cost(rps.metricsOn, rps.metricsOff),
    tailCostPct: cost(rps.metricsAndTail, rps.metricsOn),
    totalCostPct: cost(rps.metricsAndTail, rps.metricsOff),
    failures: VARIANTS.reduce((n, v) => n + r.runs[v].reduce((m, x) => m + x.failures, 0), 0),
  };
}

export function renderObserveTable(f: ObserveFigures, reps: number): string {
  const n = (v: number | null) => (v == null ? '-' : v.toFixed(0));
  const pct = (v: number | null) => (v == null ? '-' : `${v.toFixed(1)} %`);
  return [
    `Cost of seeing the network: hello world, 50 connections, dcdn werift 1 tab (median of ${reps}; target < 5 %)`,
    `  metrics off            ${n(f.rps.metricsOff).padStart(7)} req/s`,
    `  metrics on             ${n(f.rps.metricsOn).padStart(7)} req/s   cost ${pct(f.metricsCostPct)}`,
    `  metrics + dcdn tail    ${n(f.rps.metricsAndTail).padStart(7)} req/s   cost ${pct(f.tailCostPct)} (vs metrics on), ${pct(f.totalCostPct)} (vs off)`,
    ...(f.failures ? [`  ${f.failures} requests FAILED`] : []),
  ].join('\n');
}
