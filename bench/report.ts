/**
 * Turns raw runs into medians, the `summary` figures the performance targets name, the targets they are held
 * to, and the table printed on the terminal.
 */
import { NODE_TRANSPORTS, type ChannelResults, type NodeTransport } from './channel.ts';
import type { TargetRuns } from './http.ts';
import { KV_BACKEND_LABELS, KV_BACKENDS, sizeLabel, type KvBackend, type KvResults } from './kv.ts';
import type { MemoryResult } from './memory.ts';
import { median, ratio, round } from './stats.ts';

/** Round trips of a small frame and of one 64 KiB message, in ms. */
export interface RoundTripFigures {
  rttP50Ms: number | null;
  rttP90Ms: number | null;
  rttP99Ms: number | null;
  /** Round trip of one 64 KiB message (null when not measured, e.g. a run from before it was). */
  rtt64kP50Ms: number | null;
  rtt64kP90Ms: number | null;
  rtt64kP99Ms: number | null;
}

export interface TransportFigures extends RoundTripFigures {
  skipped?: string;
  maxMessageSize?: number;
  setupMsFirst: number | null;
  setupMsMedian: number | null;
  /** By message size. */
  bulk: Record<string, { toTabMbps: number | null; toNodeMbps: number | null; cpuSecondsPerMbToTab: number | null; cpuSecondsPerMbToNode: number | null }>;
}

export interface ChannelFigures {
  transports: Record<NodeTransport, TransportFigures>;
  chromium: RoundTripFigures & {
    setupMsMedian: number | null;
    bulkMbps: Record<string, number | null>;
  };
}

export interface HttpFigures {
  label: string;
  skipped?: string;
  c1Rps: number | null;
  c1P50Ms: number | null;
  c1P99Ms: number | null;
  c50Rps: number | null;
  c50P50Ms: number | null;
  c50P99Ms: number | null;
  /** The server process's CPU µs per request at 50 connections (median over runs; dcdn: the ingress). */
  c50CpuUsPerRequest: number | null;
  downloadMbps: number | null;
  uploadMbps: number | null;
  failures: number;
}

/** The figures every run reports, so runs can be compared. */
export interface Summary {
  rttP50WebrtcOverWs: number | null;
  streamWebrtcOverChromiumCeiling: number | null;
  cpuPerMbWeriftOverNodeDatachannel: number | null;
  e2eRpsWebrtcOverWs: number | null;
  e2eRpsWebrtcOverWorkerd: number | null;
  /** Hello world at 50 connections answered from the ingress cache, over plain Node. */
  e2eRpsCachedOverNode: number | null;
  e2eP50OverheadMsVsNode: number | null;
  ingressRssGrowthMbPerGiB: number | null;
  /** The ingress process's CPU µs per hello-world request, werift, 1 tab, 50 connections. */
  ingressCpuUsPerRequest: number | null;
  /** KV from a handler, SQLite, ~100-byte value: p50 of `get` and of `put` (ms). Not targets. */
  kvGetP50Ms: number | null;
  kvPutP50Ms: number | null;
}

/**
 * Summary figures that are performance targets. The kv ones are reported, not held to a goal;
 * so is the channel round trip, which Chromium's own data channel stack bounds (issue 16).
 */
type GoalKey = Exclude<keyof Summary, 'kvGetP50Ms' | 'kvPutP50Ms' | 'rttP50WebrtcOverWs'>;

export interface TargetCheck {
  key: keyof Summary;
  what: string;
  value: number | null;
  goal: string;
  met: boolean | null;
}

const GOALS: Record<GoalKey, { what: string; goal: string; ok: (v: number) => boolean }> = {
  streamWebrtcOverChromiumCeiling: { what: 'bulk MB/s, werift / Chromium tab-to-tab', goal: '>= 0.8', ok: (v) => v >= 0.8 },
  cpuPerMbWeriftOverNodeDatachannel: { what: 'Node CPU per MB, werift / node-datachannel', goal: '<= 2', ok: (v) => v <= 2 },
  e2eRpsWebrtcOverWs: { what: 'hello req/s at 50 conns, dcdn werift / dcdn WebSocket', goal: '>= 0.95', ok: (v) => v >= 0.95 },
  e2eRpsWebrtcOverWorkerd: { what: 'hello req/s at 50 conns, dcdn werift / workerd', goal: '>= 0.5', ok: (v) => v >= 0.5 },
  e2eRpsCachedOverNode: { what: 'hello req/s at 50 conns, dcdn cache HIT / plain Node', goal: '>= 1.0', ok: (v) => v >= 1.0 },
  e2eP50OverheadMsVsNode: { what: 'p50 at 1 conn, dcdn werift minus plain Node (ms)', goal: '<= 0.6', ok: (v) => v <= 0.6 },
  ingressRssGrowthMbPerGiB: { what: 'ingress RSS growth per GiB streamed (MiB)', goal: '<= 64', ok: (v) => v <= 64 },
  ingressCpuUsPerRequest: { what: 'ingress CPU per request at 50 conns, werift (µs)', goal: '<= 40', ok: (v) => v <= 40 },
};

/** Bulk figures in the summary use this message size: the ingress chunks bodies to it. */
export const SUMMARY_MESSAGE_SIZE = 262144;

export function channelFigures(r: ChannelResults): ChannelFigures {
  const transports = {} as Record<NodeTransport, TransportFigures>;
  for (const t of NODE_TRANSPORTS) {
    const runs = r.transports[t];
    const bulk: TransportFigures['bulk'] = {};
    for (const [size, b] of Object.entries(runs.bulk)) {
      bulk[size] = {
        toTabMbps: median(b.toTab.map((x) => x.mbps)),
        toNodeMbps: median(b.toNode.map((x) => x.mbps)),
        cpuSecondsPerMbToTab: median(b.toTab.map((x) => x.cpuSecondsPerMb)),
        cpuSecondsPerMbToNode: median(b.toNode.map((x) => x.cpuSecondsPerMb)),
      };
    }
    transports[t] = {
      ...(runs.skipped ? { skipped: runs.skipped } : {}),
      ...(runs.maxMessageSize ? { maxMessageSize: runs.maxMessageSize } : {}),
      setupMsFirst: runs.setupMs[0] ?? null,
      setupMsMedian: median(runs.setupMs),
      rttP50Ms: median(runs.rtt.map((x) => x.p50)),
      rttP90Ms: median(runs.rtt.map((x) => x.p90)),
      rttP99Ms: median(runs.rtt.map((x) => x.p99)),
      // Runs written before the 64 KiB round trip was measured have no `rtt64k`.
      rtt64kP50Ms: median((runs.rtt64k ?? []).map((x) => x.p50)),
      rtt64kP90Ms: median((runs.rtt64k ?? []).map((x) => x.p90)),
      rtt64kP99Ms: median((runs.rtt64k ?? []).map((x) => x.p99)),
      bulk,
    };
  }
  const bulkMbps = Object.fromEntries(Object.entries(r.chromium.bulk).map(([size, xs]) => [size, median(xs)]));
  const rtt = r.chromium.rtt;
  const rtt64k = r.chromium.rtt64k ?? [];
  return {
    transports,
    chromium: {
      setupMsMedian: median(r.chromium.setupMs),
      rttP50Ms: median(rtt.map((x) => x.p50)),
      rttP90Ms: median(rtt.map((x) => x.p90)),
      rttP99Ms: median(rtt.map((x) => x.p99)),
      rtt64kP50Ms: median(rtt64k.map((x) => x.p50)),
      rtt64kP90Ms: median(rtt64k.map((x) => x.p90)),
      rtt64kP99Ms: median(rtt64k.map((x) => x.p99)),
      bulkMbps,
    },
  };
}

export function httpFigures(runs: Record<string, TargetRuns>): Record<string, HttpFigures> {
  const out: Record<string, HttpFigures> = {};
  for (const [key, r] of Object.entries(runs)) {
    out[key] = {
      label: r.label,
      ...(r.skipped ? { skipped: r.skipped } : {}),
      c1Rps: median(r.c1.map((x) => x.rps)),
      c1P50Ms: median(r.c1.map((x) => x.p50Ms)),
      c1P99Ms: median(r.c1.map((x) => x.p99Ms)),
      c50Rps: median(r.c50.map((x) => x.rps)),
      c50CpuUsPerRequest: median(r.c50CpuUsPerRequest ?? []),
      c50P50Ms: median(r.c50.map((x) => x.p50Ms)),
      c50P99Ms: median(r.c50.map((x) => x.p99Ms)),
      downloadMbps: median(r.downloadMbps),
      uploadMbps: median(r.uploadMbps),
      failures: [...r.c1, ...r.c50].reduce((n, x) => n + x.failures, 0),
    };
  }
  return out;
}

export interface KvRow {
  /** `http` (a request to a handler doing nothing, from the bench process), `put`, `get`, `list`. */
  op: string;
  /** Value size in bytes; for list, the limit. */
  size: number | null;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  /** Samples per repetition. */
  n: number;
}

export interface KvFigures {
  backends: Record<KvBackend, { skipped?: string; rows: KvRow[] }>;
}

/** The summary's KV figures are for this value size (the small one). */
export const KV_SUMMARY_SIZE = 100;

export function kvFigures(r: KvResults): KvFigures {
  const backends = {} as KvFigures['backends'];
  for (const b of KV_BACKENDS) {
    const runs = r.backends[b];
    const row = (op: string, size: number | null, reps: KvResults['backends'][KvBackend]['http']): KvRow => ({
      op,
      size,
      p50Ms: round(median(reps.map((x) => x.p50))),
      p90Ms: round(median(reps.map((x) => x.p90))),
      p99Ms: round(median(reps.map((x) => x.p99))),
      meanMs: round(median(reps.map((x) => x.mean))),
      n: reps[0]?.n ?? 0,
    });
    const rows: KvRow[] = [];
    if (!runs.skipped) {
      rows.push(row('http', null, runs.http));
      const sizes = [...new Set([...Object.keys(runs.ops.get ?? {}), ...Object.keys(runs.ops.put ?? {})])].map(Number).sort((a, c) => a - c);
      for (const size of sizes) for (const op of ['get', 'put']) if (runs.ops[op]?.[size]) rows.push(row(op, size, runs.ops[op][size]));
      for (const [limit, reps] of Object.entries(runs.ops.list ?? {})) rows.push(row('list', Number(limit), reps));
    }
    backends[b] = { ...(runs.skipped ? { skipped: runs.skipped } : {}), rows };
  }
  return { backends };
}

function kvRow(kv: KvFigures | undefined, backend: KvBackend, op: string, size: number): KvRow | undefined {
  return kv?.backends[backend].rows.find((r) => r.op === op && r.size === size);
}

/** Mean of the two directions, or the one present. */
function bothWays(a: number | null | undefined, b: number | null | undefined): number | null {
  const xs = [a, b].filter((x): x is number => typeof x === 'number');
  return xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null;
}

export function summarise(channel?: ChannelFigures, http?: Record<string, HttpFigures>, memory?: MemoryResult, kv?: KvFigures): { summary: Summary; targets: TargetCheck[] } {
  const werift = channel?.transports.werift;
  const ndc = channel?.transports['node-datachannel'];
  const ws = channel?.transports.websocket;
  const size = String(SUMMARY_MESSAGE_SIZE);
  const stream = bothWays(werift?.bulk[size]?.toTabMbps, werift?.bulk[size]?.toNodeMbps);
  const cpu = (t?: TransportFigures) => bothWays(t?.bulk[size]?.cpuSecondsPerMbToTab, t?.bulk[size]?.cpuSecondsPerMbToNode);
  const e2e = (key: string) => http?.[key];
  const summary: Summary = {
    rttP50WebrtcOverWs: ratio(werift?.rttP50Ms, ws?.rttP50Ms),
    streamWebrtcOverChromiumCeiling: ratio(stream, channel?.chromium.bulkMbps[size]),
    cpuPerMbWeriftOverNodeDatachannel: ratio(cpu(werift), cpu(ndc)),
    e2eRpsWebrtcOverWs: ratio(e2e('werift-1')?.c50Rps, e2e('ws-1')?.c50Rps),
    e2eRpsWebrtcOverWorkerd: ratio(e2e('werift-1')?.c50Rps, e2e('workerd')?.c50Rps),
    e2eRpsCachedOverNode: ratio(e2e('cached')?.c50Rps, e2e('node')?.c50Rps),
    e2eP50OverheadMsVsNode: e2e('werift-1')?.c1P50Ms != null && e2e('node')?.c1P50Ms != null ? e2e('werift-1')!.c1P50Ms! - e2e('node')!.c1P50Ms! : null,
    ingressRssGrowthMbPerGiB: memory?.growthMiBPerGiB ?? null,
    ingressCpuUsPerRequest: e2e('werift-1')?.c50CpuUsPerRequest ?? null,
    kvGetP50Ms: kvRow(kv, 'sqlite', 'get', KV_SUMMARY_SIZE)?.p50Ms ?? null,
    kvPutP50Ms: kvRow(kv, 'sqlite', 'put', KV_SUMMARY_SIZE)?.p50Ms ?? null,
  };
  for (const k of Object.keys(summary) as Array<keyof Summary>) summary[k] = round(summary[k], 3);
  const targets = (Object.keys(GOALS) as GoalKey[]).map((key) => {
    const value = summary[key];
    return { key, what: GOALS[key].what, value, goal: GOALS[key].goal, met: value === null ? null : GOALS[key].ok(value) };
  });
  return { summary, targets };
}

// ---- the terminal table ----

const f = (v: number | null | undefined, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');

/** Columns of figures are right-aligned, columns of words left-aligned. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => i > 0 && rows.every((r) => /^(-?[\d.]+|-|)$/.test(r[i] ?? '')));
  const line = (cells: string[]) => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function renderChannelTable(c: ChannelFigures, reps: number, smallFrameBytes = 106): string {
  const sizes = [...new Set(Object.values(c.transports).flatMap((t) => Object.keys(t.bulk)).concat(Object.keys(c.chromium.bulkMbps)))].sort((a, b) => Number(a) - Number(b));
  const k = (s: string) => `${Number(s) / 1024}K`;
  const label: Record<NodeTransport, string> = { werift: 'werift', 'node-datachannel': 'node-datachannel', websocket: 'WebSocket' };
  const notes: string[] = [];
  const live = NODE_TRANSPORTS.filter((t) => {
    if (c.transports[t].skipped) notes.push(`${label[t]} skipped: ${c.transports[t].skipped}`);
    return !c.transports[t].skipped;
  });
  const skippedRow = (t: NodeTransport, columns: number) => [`${label[t]} (skipped)`, ...Array.from({ length: columns - 1 }, () => '-')];

  // Latency: setup, then the round trip of a small frame and of a 64 KiB message.
  const latencyHeader = ['channel (one tab)', 'setup ms', 'rtt p50', 'p90', 'p99', '64K rtt p50', 'p90', 'p99'];
  const latencyRows = NODE_TRANSPORTS.map((t) => {
    const x = c.transports[t];
    if (!live.includes(t)) return skippedRow(t, latencyHeader.length);
    return [label[t], f(x.setupMsMedian, 0), f(x.rttP50Ms, 3), f(x.rttP90Ms, 3), f(x.rttP99Ms, 3), f(x.rtt64kP50Ms, 3), f(x.rtt64kP90Ms, 3), f(x.rtt64kP99Ms, 3)];
  });
  const ch = c.chromium;
  latencyRows.push(['Chromium tab→tab', f(ch.setupMsMedian, 0), f(ch.rttP50Ms, 3), f(ch.rttP90Ms, 3), f(ch.rttP99Ms, 3), f(ch.rtt64kP50Ms, 3), f(ch.rtt64kP90Ms, 3), f(ch.rtt64kP99Ms, 3)]);

  // Throughput each way by message size, and Node's CPU per MB (mean of the two directions).
  const bulkHeader = ['channel (one tab)', ...sizes.flatMap((s) => [`→tab ${k(s)}`, `←tab ${k(s)}`]), ...sizes.map((s) => `CPU s/MB ${k(s)}`)];
  const bulkRows = NODE_TRANSPORTS.map((t) => {
    const x = c.transports[t];
    if (!live.includes(t)) return skippedRow(t, bulkHeader.length);
    return [
      label[t],
      ...sizes.flatMap((s) => [f(x.bulk[s]?.toTabMbps), f(x.bulk[s]?.toNodeMbps)]),
      ...sizes.map((s) => f(bothWays(x.bulk[s]?.cpuSecondsPerMbToTab, x.bulk[s]?.cpuSecondsPerMbToNode), 4)),
    ];
  });
  bulkRows.push(['Chromium tab→tab', ...sizes.flatMap((s) => [f(ch.bulkMbps[s]), '']), ...sizes.map(() => '')]);

  return (
    `Channel level: medians of ${reps} repetitions; round trips in ms (a ${smallFrameBytes}-byte frame, and one 64 KiB message)\n${table(latencyHeader, latencyRows)}\n\n` +
    `MB/s (10^6 bytes) each way by message size; Node CPU seconds per MB (user + system, mean of both directions)\n${table(bulkHeader, bulkRows)}` +
    notes.map((n) => `\n${n}`).join('')
  );
}

export function renderHttpTable(h: Record<string, HttpFigures>, reps: number): string {
  const node = h.node;
  const workerd = h.workerd;
  const header = ['end to end HTTP', 'c1 req/s', 'c1 p50', 'c1 p99', 'c50 req/s', 'c50 p50', 'c50 p99', 'c50 µs CPU/req', 'down MB/s', 'up MB/s', 'rps/node', 'rps/workerd', 'p50-node ms'];
  const notes: string[] = [];
  const rows = Object.values(h).map((x) => {
    if (x.skipped) {
      notes.push(`${x.label} skipped: ${x.skipped}`);
      return [`${x.label} (skipped)`, ...header.slice(1).map(() => '-')];
    }
    return [
      x.label + (x.failures ? ` (${x.failures} failed)` : ''),
      f(x.c1Rps, 0),
      f(x.c1P50Ms, 3),
      f(x.c1P99Ms, 2),
      f(x.c50Rps, 0),
      f(x.c50P50Ms, 2),
      f(x.c50P99Ms, 2),
      f(x.c50CpuUsPerRequest, 0),
      f(x.downloadMbps),
      f(x.uploadMbps),
      f(ratio(x.c50Rps, node?.c50Rps), 2),
      f(ratio(x.c50Rps, workerd?.c50Rps), 2),
      x.c1P50Ms != null && node?.c1P50Ms != null ? f(x.c1P50Ms - node.c1P50Ms, 3) : '-',
    ];
  });
  return `End to end: medians of ${reps} repetitions; latencies in ms; ratios of c50 req/s; CPU of the server process (/proc, 10 ms ticks)\n${table(header, rows)}${notes.map((n) => `\n${n}`).join('')}`;
}

export function renderKvTable(kv: KvFigures, reps: number): string {
  const header = ['KV from a handler', 'operation', 'n', 'p50', 'p90', 'p99', 'p50 / http p50'];
  const notes: string[] = [];
  const rows: string[][] = [];
  for (const b of KV_BACKENDS) {
    const x = kv.backends[b];
    const label = KV_BACKEND_LABELS[b];
    if (x.skipped) {
      notes.push(`${label} skipped: ${x.skipped}`);
      rows.push([`${label} (skipped)`, ...header.slice(1).map(() => '-')]);
      continue;
    }
    const http = x.rows.find((r) => r.op === 'http');
    for (const r of x.rows) {
      const what = r.op === 'http' ? 'HTTP request, no-op handler' : r.op === 'list' ? `list, limit ${r.size}` : `${r.op} ${sizeLabel(r.size!)}`;
      rows.push([label, what, String(r.n), f(r.p50Ms, 2), f(r.p90Ms, 2), f(r.p99Ms, 2), r.op === 'http' ? '' : f(ratio(r.p50Ms, http?.p50Ms), 2)]);
    }
  }
  return (
    `KV latency: medians of ${reps} repetitions of n sequential operations; ms, timed in the handler ` +
    `(the HTTP row: from the bench process, same ingress and tab)\n${table(header, rows)}${notes.map((n) => `\n${n}`).join('')}`
  );
}

export function renderTargets(targets: TargetCheck[], memory?: MemoryResult): string {
  const rows = targets.map((t) => [t.key, t.what, f(t.value, 3), t.goal, t.met === null ? 'not measured' : t.met ? 'MET' : 'NOT MET']);
  const note = memory?.scaledFromBytes ? `\n(ingress RSS growth measured over ${(memory.bytes / 1024 ** 2).toFixed(0)} MiB and scaled linearly to 1 GiB)` : '';
  return `Summary against the performance targets (docs/performance.md)\n${table(['summary key', 'what', 'value', 'target', ''], rows)}${note}`;
}
