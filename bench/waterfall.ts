/**
 * The latency waterfall (docs/performance.md, "Waterfall"): where a hello world's time goes at
 * one connection, hop by hop, for dcdn over werift, node-datachannel and WebSocket (one tab).
 * A `dcdn tail` subscriber asks the ingress to time every request (`/_dcdn/tail?timing=1`); one
 * keep-alive connection sends requests back to back; each request's segments come back with its
 * tail event, and the figure per segment is the median over all of them. Run against the live
 * targets of the http section, after their loads.
 */
import { Agent, request } from 'node:http';
import { WebSocket } from 'ws';
import { WATERFALL_SEGMENTS, type Waterfall, type WaterfallSegment } from '../protocol/index.ts';
import { progress } from './progress.ts';
import { median } from './stats.ts';
import type { Target } from './targets.ts';

/** The targets the waterfall is taken for, by the name the summary gives them. */
export const WATERFALL_TARGETS = { werift: 'werift-1', 'node-datachannel': 'ndc-1', websocket: 'ws-1' } as const;
export type WaterfallTransport = keyof typeof WATERFALL_TARGETS;

export interface WaterfallConfig {
  /** Timed requests per target that count, after `warmup` timed ones that do not. */
  requests: number;
  warmup: number;
}

export interface WaterfallFigures {
  /** Median µs per segment (medians need not add up to the median total). */
  segmentsUs: Waterfall;
  /** Median of the segments' sum per request, µs. */
  totalUs: number | null;
  /** Median of the client's own round trip per request, µs: the waterfall plus the loopback HTTP. */
  clientUs: number | null;
  requests: number;
}

export type WaterfallResults = Partial<Record<WaterfallTransport, WaterfallFigures | { skipped: string }>>;

export async function runWaterfall(config: WaterfallConfig, targets: readonly Target[]): Promise<WaterfallResults> {
  const out: WaterfallResults = {};
  for (const [transport, key] of Object.entries(WATERFALL_TARGETS) as Array<[WaterfallTransport, string]>) {
    const t = targets.find((x) => x.spec.key === key);
    if (!t) continue;
    if ('skipped' in t) {
      out[transport] = { skipped: t.skipped };
      continue;
    }
    if (!t.operatorToken) throw new Error(`${t.spec.label} printed no operator token: no waterfall`);
    out[transport] = await timedRequests(t.url, t.operatorToken, config);
    const f = out[transport] as WaterfallFigures;
    progress(`waterfall ${t.spec.label}: total ${f.totalUs?.toFixed(0)} µs (${WATERFALL_SEGMENTS.map((s) => `${s} ${f.segmentsUs[s].toFixed(0)}`).join(', ')})`);
  }
  return out;
}

/** Timed requests against one live target (its URL and operator token). */
export async function timedRequests(base: string, token: string, config: WaterfallConfig): Promise<WaterfallFigures> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/_dcdn/tail?timing=1`, { headers: { authorization: `Bearer ${token}` } });
  const events: Array<Waterfall | null> = [];
  let wake: (() => void) | null = null;
  let hello!: () => void;
  const ready = new Promise<void>((r) => (hello = r));
  ws.on('message', (data) => {
    const e = JSON.parse(String(data)) as { type: string; timing?: Waterfall | null };
    if (e.type === 'hello') hello();
    if (e.type === 'request') {
      events.push(e.timing ?? null);
      wake?.();
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  await ready;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const client: number[] = [];
  try {
    const total = config.warmup + config.requests;
    for (let i = 0; i < total; i++) {
      const t0 = performance.now();
      await get(`${base}/`, agent);
      if (i >= config.warmup) client.push((performance.now() - t0) * 1000);
    }
    // Each event follows its response by a tick: wait for the last, bounded.
    const deadline = Date.now() + 10_000;
    while (events.length < total && Date.now() < deadline) await new Promise<void>((r) => ((wake = r), setTimeout(r, 100)));
  } finally {
    agent.destroy();
    ws.close();
  }
  const timed = events.slice(config.warmup).filter((w): w is Waterfall => w !== null);
  const segmentsUs = Object.fromEntries(WATERFALL_SEGMENTS.map((s) => [s, round(median(timed.map((w) => w[s])))])) as Record<WaterfallSegment, number>;
  return {
    segmentsUs,
    totalUs: round(median(timed.map((w) => WATERFALL_SEGMENTS.reduce((n, s) => n + w[s], 0)))),
    clientUs: round(median(client)),
    requests: timed.length,
  };
}

function get(url: string, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url}: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function round(v: number | null): number {
  return v === null ? NaN : Math.round(v * 10) / 10;
}

/** The table: one row per transport, one column per segment, µs. */
export function renderWaterfallTable(r: WaterfallResults, requests: number): string {
  const short: Record<WaterfallSegment, string> = {
    ingressIn: 'ingIn', ingressQueue: 'ingQ', toPage: '→page', pageToSandbox: 'pg→sbx', sandboxToHandler: 'sbx→h', handler: 'handler', handlerToPage: 'h→pg', pageOut: 'pgOut', toIngress: '→ing', ingressOut: 'ingOut',
  };
  const header = ['waterfall µs (c1)', ...WATERFALL_SEGMENTS.map((s) => short[s]), 'sum', 'client'];
  const rows = (Object.keys(WATERFALL_TARGETS) as WaterfallTransport[]).flatMap((t) => {
    const f = r[t];
    if (!f) return [];
    if ('skipped' in f) return [[`${t} (skipped)`, ...header.slice(1).map(() => '-')]];
    return [[t, ...WATERFALL_SEGMENTS.map((s) => fmt(f.segmentsUs[s])), fmt(f.totalUs), fmt(f.clientUs)]];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `Latency waterfall, hello world at 1 connection, one tab: median µs per hop over ${requests} timed requests (docs/performance.md)`,
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
  ].join('\n');
}

function fmt(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(0) : '-';
}
