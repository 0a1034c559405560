/**
 * `dcdn bench` (also `npm run bench`): measures the data channel against WebSocket and dcdn
 * against plain servers, side by side in one run, and writes a table (stdout), the raw figures
 * (JSON) and a chart (SVG beside the JSON). Progress goes to stderr. See docs/performance.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runChannelSection, type ChannelConfig, type ChannelResults } from './channel.ts';
import { killAllChildrenNow, REPO_ROOT, stopAllChildren } from './children.ts';
import { runCleanups } from './cleanup.ts';
import { runHttpSection, type HttpConfig, type TargetRuns } from './http.ts';
import { runKvSection, type KvConfig, type KvResults } from './kv.ts';
import { clusterFigures, runClusterSection, type ClusterConfig, type ClusterResults } from './cluster.ts';
import { renderClusterTable } from './cluster-report.ts';
import { renderSqlTable, runSqlSection, type SqlConfig, type SqlResults } from './sql.ts';
import { describeMachine } from './machine.ts';
import { runMemorySection, type MemoryResult } from './memory.ts';
import { progress } from './progress.ts';
import { channelFigures, httpFigures, kvFigures, renderChannelTable, renderHttpTable, renderKvTable, renderTargets, summarise } from './report.ts';
import { renderSvg } from './svg.ts';
import { renderWaterfallTable, runWaterfall, type WaterfallConfig, type WaterfallResults } from './waterfall.ts';
import { startTarget, TARGETS, type Target, type TargetSpec } from './targets.ts';
import { observeFigures, renderObserveTable, runObserveSection, type ObserveConfig, type ObserveResults } from './observe.ts';

export const benchUsage = 'dcdn bench [--quick | --smoke] [--json FILE] [--only channel|http|memory|kv|observe|cluster|sql] [--profile DIR]';
const SECTIONS = ['channel', 'http', 'memory', 'kv', 'observe', 'cluster'] as const;
/** Sections that run only when named with --only (sql: its first call runs PGlite's initdb, tens of seconds). */
const ON_REQUEST = ['sql'] as const;
type Section = (typeof SECTIONS)[number] | (typeof ON_REQUEST)[number];

const HELP = `Usage: ${benchUsage}

Measures, side by side in one run on this machine, with medians over repetitions:
  channel  one tab, echo in the page: RTT p50/p90/p99 of a ~100-byte frame and of a 64 KiB
           message, throughput each way (64 KiB and 256 KiB messages), setup time and Node CPU
           per MB, over werift, node-datachannel and WebSocket; and Chromium's own tab-to-tab
           data channel (the ceiling) measured the same way
  http     autocannon at 1 and 50 connections (hello world), 10 MiB download and upload, for
           plain Node, workerd and dcdn over werift / node-datachannel / WebSocket (1 and 2 tabs),
           with each server's CPU per request at 50 connections; then the latency waterfall:
           median µs per hop of timed requests at 1 connection (werift, node-datachannel and
           WebSocket, one tab; /_dcdn/tail?timing=1)
  memory   ingress RSS growth while a large body streams through dcdn over werift
  kv       KV latency seen from a handler (one tab, werift): p50/p90/p99 of put and get of a
           ~100-byte and a 64 KiB value and of list (limit 100), timed in the handler, for
           SQLite and Redis side by side, next to a no-op HTTP request's round trip
  observe  what seeing the network costs: hello-world req/s (50 connections, werift, 1 tab)
           with Prometheus metrics off, on, and on with a dcdn tail attached, side by side
  cluster  two signaling nodes on one redis-server, two ingresses (K = 1), one tab: hello →
           join at an ingress on the same node vs the other node (p50/p99), a signal's relay
           within a node vs across nodes, hello-world req/s through the ingress holding the tab
           vs the other one (forwarded once), and the Redis coordination's own figures
           (register, renew, memory per host, a lost node's peers leaving)
  sql      (only with --only sql) SQL latency seen from a handler (one tab, werift): p50/p99
           of a point select, an insert, a 100-row select and a 10-statement batch, timed in
           the handler, for the embedded store (PGlite) and Postgres side by side, next to a
           no-op request's round trip

Options:
  --quick          short run (about 3 minutes): fewer repetitions, smaller transfers
  --smoke          every section's code once with tiny counts (well under a minute), the same
                   table; the figures mean nothing. CI runs it (test/bench-smoke.test.ts) so
                   the benchmark cannot rot unseen. Default JSON: bench/results/smoke.json
  --json FILE      raw figures (default bench/results/latest.json); the SVG goes beside it
  --only SECTION   run one section: channel, http, memory, kv, observe, cluster or sql
  --profile DIR    run the dcdn ingress children under node --cpu-prof, profiles into DIR
                   (summarise one with: node --import tsx bench/cpu-profile.ts FILE)
  -h, --help       this help

Everything runs on 127.0.0.1; every server, ingress and browser started is stopped at the end
or on Ctrl-C.
`;

const MiB = 1024 * 1024;
const CONFIGS = {
  // Enough to take every path (warm-up, RTTs of both sizes, bulk both ways, each HTTP target,
  // the memory sampler, every KV operation) once, not to measure anything.
  smoke: {
    channel: { reps: 1, rttCount: 20, rttWarmup: 5, rtt64kCount: 4, rtt64kWarmup: 1, bulkBytes: 1 * MiB, sizes: [65536, 262144] },
    http: { reps: 1, seconds: 1, transferBytes: 1 * MiB, transfersPerRep: 1 },
    waterfall: { requests: 10, warmup: 2 },
    memoryBytes: 4 * MiB,
    kv: { reps: 1, ops: 20, warmup: 5, sizes: [100, 65536], listOps: 10, listLimit: 100 },
    observe: { reps: 1, seconds: 1 },
    cluster: { reps: 1, seconds: 1, connections: 10, presenceSamples: 5, relaySamples: 5, coordination: { samples: 20, hosts: 50, nodeLost: false } },
    sql: { reps: 1, ops: 10, warmup: 2 },
  },
  quick: {
    channel: { reps: 3, rttCount: 500, rttWarmup: 100, rtt64kCount: 60, rtt64kWarmup: 10, bulkBytes: 8 * MiB, sizes: [65536, 262144] },
    http: { reps: 3, seconds: 1, transferBytes: 10 * MiB, transfersPerRep: 1 },
    waterfall: { requests: 300, warmup: 50 },
    memoryBytes: 128 * MiB,
    kv: { reps: 3, ops: 200, warmup: 50, sizes: [100, 65536], listOps: 100, listLimit: 100 },
    observe: { reps: 3, seconds: 2 },
    cluster: { reps: 3, seconds: 2, connections: 10, presenceSamples: 100, relaySamples: 100, coordination: { samples: 300, hosts: 1000, nodeLost: false } },
    sql: { reps: 3, ops: 200, warmup: 30 },
  },
  full: {
    channel: { reps: 5, rttCount: 2000, rttWarmup: 200, rtt64kCount: 200, rtt64kWarmup: 20, bulkBytes: 32 * MiB, sizes: [65536, 262144] },
    http: { reps: 5, seconds: 3, transferBytes: 10 * MiB, transfersPerRep: 2 },
    waterfall: { requests: 1000, warmup: 100 },
    memoryBytes: 1024 * MiB,
    kv: { reps: 5, ops: 1000, warmup: 100, sizes: [100, 65536], listOps: 300, listLimit: 100 },
    observe: { reps: 5, seconds: 3 },
    cluster: { reps: 5, seconds: 3, connections: 10, presenceSamples: 300, relaySamples: 300, coordination: { samples: 1000, hosts: 1000, nodeLost: true } },
    sql: { reps: 5, ops: 500, warmup: 50 },
  },
} satisfies Record<string, { channel: ChannelConfig; http: HttpConfig; waterfall: WaterfallConfig; memoryBytes: number; kv: KvConfig; observe: ObserveConfig; cluster: ClusterConfig; sql: SqlConfig }>;

export async function runBench(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        smoke: { type: 'boolean', default: false },
        json: { type: 'string' },
        only: { type: 'string' },
        profile: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`dcdn bench: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (flags.only && ![...SECTIONS, ...ON_REQUEST].includes(flags.only as Section)) {
    process.stderr.write(`dcdn bench: --only must be one of ${[...SECTIONS, ...ON_REQUEST].join(', ')}\n`);
    return 2;
  }
  const sections: Section[] = flags.only ? [flags.only as Section] : [...SECTIONS];
  if (flags.quick && flags.smoke) {
    process.stderr.write('dcdn bench: --quick and --smoke are different runs; choose one\n');
    return 2;
  }
  const mode = flags.smoke ? 'smoke' : flags.quick ? 'quick' : 'full';
  const config = CONFIGS[mode];
  // A smoke run's figures mean nothing: they never replace the last real run's.
  const jsonPath = resolve(flags.json ?? join(REPO_ROOT, 'bench', 'results', mode === 'smoke' ? 'smoke.json' : 'latest.json'));

  let stopping = false;
  const interrupted = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    progress(`${signal}: stopping every server, ingress and browser`);
    await runCleanups();
    await stopAllChildren();
    process.exit(130);
  };
  const onSignal = (signal: NodeJS.Signals) => void interrupted(signal);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllChildrenNow);

  const started = performance.now();
  try {
    progress(`${mode} run: ${sections.join(', ')}`);
    const machine = await describeMachine();
    progress(`machine: ${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAverageAtStart.join(' ')}; ${machine.chromium}`);

    let channel: ChannelResults | undefined;
    let http: Record<string, TargetRuns> | undefined;
    let waterfall: WaterfallResults | undefined;
    let memory: MemoryResult | undefined;
    let kv: KvResults | undefined;
    if (sections.includes('channel')) channel = await runChannelSection(config.channel);
    if (sections.includes('http')) {
      // A smoke run skips the two-tab targets: the same code as one tab, and each launches a Chromium.
      const specs = mode === 'smoke' ? TARGETS.filter((t) => !t.key.endsWith('-2')) : TARGETS;
      const targets = await startTargets(specs, flags.profile ? resolve(flags.profile) : undefined);
      try {
        http = await runHttpSection(config.http, targets);
        // After the loads, on the same warm targets: the timed requests must not be in the loads.
        waterfall = await runWaterfall(config.waterfall, targets);
      } finally {
        progress('stopping targets');
        await Promise.all(targets.map((t) => ('stop' in t ? t.stop() : undefined)));
      }
    }
    if (sections.includes('memory')) {
      // A fresh ingress, not one whose heap the load above has already grown.
      const spec = TARGETS.find((t) => t.key === 'werift-1')!;
      const [t] = await startTargets([spec], flags.profile ? resolve(flags.profile) : undefined);
      try {
        if (!t || 'skipped' in t) throw new Error(`${spec.label} cannot run: ${t && 'skipped' in t ? t.skipped : 'not started'}`);
        memory = await runMemorySection(t.url, t.child, config.memoryBytes, spec.label);
      } finally {
        if (t && 'stop' in t) await t.stop();
      }
    }

    if (sections.includes('kv')) kv = await runKvSection(config.kv);
    let sql: SqlResults | undefined;
    if (sections.includes('sql')) sql = await runSqlSection(config.sql);
    let observe: ObserveResults | undefined;
    if (sections.includes('observe')) observe = await runObserveSection(config.observe);
    const observeFig = observe ? observeFigures(observe) : undefined;
    let cluster: ClusterResults | undefined;
    if (sections.includes('cluster')) cluster = await runClusterSection(config.cluster);
    const clusterFig = cluster ? clusterFigures(cluster) : undefined;

    const channelFig = channel ? channelFigures(channel) : undefined;
    const httpFig = http ? httpFigures(http) : undefined;
    const kvFig = kv ? kvFigures(kv) : undefined;
    const { summary, targets } = summarise(channelFig, httpFig, memory, kvFig, clusterFig);
    const durationS = Math.round((performance.now() - started) / 1000);
    const report = {
      schema: 'dcdn-bench/1',
      mode,
      sections,
      durationS,
      machine: { ...machine, loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100) },
      summary: { ...summary, waterfallUs: waterfall ? waterfallSummary(waterfall) : null },
      targets,
      channel: channel && { config: channel.config, figures: channelFig, raw: channel },
      http: http && { config: config.http, figures: httpFig, raw: http },
      waterfall: waterfall && { config: config.waterfall, figures: waterfall },
      memory,
      kv: kv && { config: kv.config, figures: kvFig, raw: kv.backends },
      observe: observe && { config: observe.config, figures: observeFig, raw: observe },
      cluster: cluster && { config: cluster.config, figures: clusterFig },
      sql: sql && { config: sql.config, raw: sql.stores },
    };
    await mkdir(dirname(jsonPath), { recursive: true });
    await writeFile(jsonPath, JSON.stringify(report, null, 2) + '\n');
    const svgPath = jsonPath.replace(/\.json$/i, '') + '.svg';
    const subtitle = `${machine.cpuModel}, ${machine.cores} cores, ${machine.node}, ${machine.chromium}; ${mode} run, ${machine.date.slice(0, 16).replace('T', ' ')} UTC`;
    await writeFile(svgPath, renderSvg('dcdn bench', subtitle, channelFig, httpFig, waterfall));

    const out: string[] = [''];
    if (channelFig) out.push(renderChannelTable(channelFig, config.channel.reps, channel?.config.smallFrameBytes), '');
    if (httpFig) out.push(renderHttpTable(httpFig, config.http.reps), '');
    if (waterfall) out.push(renderWaterfallTable(waterfall, config.waterfall.requests), '');
    if (kvFig) out.push(renderKvTable(kvFig, config.kv.reps), '');
    if (observeFig) out.push(renderObserveTable(observeFig, config.observe.reps), '');
    if (clusterFig) out.push(renderClusterTable(clusterFig, config.cluster.reps, config.cluster.connections), '');
    if (sql) out.push(renderSqlTable(sql), '');
    out.push(renderTargets(targets, memory), '');
    process.stdout.write(out.join('\n') + '\n');
    progress(`done in ${durationS} s; wrote ${jsonPath} and ${svgPath}`);
    return 0;
  } catch (err) {
    // After Ctrl-C the loads in flight fail as their servers go: that is not worth a report.
    if (!stopping) progress(`failed: ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    await runCleanups();
    await stopAllChildren();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `waterfallUs` in the summary: per transport, the median µs per segment (null where skipped). */
function waterfallSummary(w: WaterfallResults): Record<string, Record<string, number> | null> {
  return Object.fromEntries(Object.entries(w).map(([t, f]) => [t, 'skipped' in f ? null : { ...f.segmentsUs, totalUs: f.totalUs ?? NaN }]));
}

/** Starts the targets two at a time (each dcdn target launches its own Chromium). */
async function startTargets(specs: readonly TargetSpec[], cpuProfDir?: string): Promise<Target[]> {
  if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
  progress(`starting ${specs.length} target(s): ${specs.map((s) => s.key).join(', ')}`);
  const targets: Target[] = [];
  for (let i = 0; i < specs.length; i += 2) {
    const batch = await Promise.all(specs.slice(i, i + 2).map((spec) => startTarget(spec, { cpuProfDir })));
    for (const t of batch) progress('skipped' in t ? `  ${t.spec.label}: skipped (${t.skipped})` : `  ${t.spec.label}: ${t.url}`);
    targets.push(...batch);
  }
  return targets;
}
