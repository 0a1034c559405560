/**
 * Re-renders a saved run: prints the terminal tables of a `dcdn bench --json` file and, with
 * `--svg FILE`, writes its chart. Figures are recomputed from the raw per-repetition values with
 * the current code, so a run saved before a column existed shows `-` there.
 *
 *   node --import tsx bench/render.ts RUN.json [--svg RUN.svg]
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ChannelResults } from './channel.ts';
import type { TargetRuns } from './http.ts';
import type { KvResults } from './kv.ts';
import type { MemoryResult } from './memory.ts';
import { channelFigures, httpFigures, kvFigures, renderChannelTable, renderHttpTable, renderKvTable, renderTargets, summarise } from './report.ts';
import { renderSvg } from './svg.ts';

interface SavedRun {
  schema: string;
  mode: string;
  durationS: number;
  machine: { cpuModel: string; cores: number; node: string; chromium: string; date: string };
  channel?: { config: ChannelResults['config']; raw: ChannelResults };
  http?: { config: { reps: number }; raw: Record<string, TargetRuns> };
  memory?: MemoryResult;
  kv?: { config: KvResults['config']; raw: KvResults['backends'] };
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { svg: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } } });
if (values.help || positionals.length !== 1) {
  process.stdout.write('usage: node --import tsx bench/render.ts RUN.json [--svg OUT.svg]\n');
  process.exit(values.help ? 0 : 2);
}

const run = JSON.parse(await readFile(positionals[0]!, 'utf8')) as SavedRun;
if (run.schema !== 'dcdn-bench/1') throw new Error(`not a dcdn bench run: schema ${run.schema}`);
const channel = run.channel ? channelFigures(run.channel.raw) : undefined;
const http = run.http ? httpFigures(run.http.raw) : undefined;
const kv = run.kv ? kvFigures({ config: run.kv.config, backends: run.kv.raw } as KvResults) : undefined;
const { targets } = summarise(channel, http, run.memory, kv);

const out: string[] = [''];
if (channel && run.channel) out.push(renderChannelTable(channel, run.channel.config.reps, run.channel.config.smallFrameBytes), '');
if (http && run.http) out.push(renderHttpTable(http, run.http.config.reps), '');
if (kv && run.kv) out.push(renderKvTable(kv, run.kv.config.reps), '');
out.push(renderTargets(targets, run.memory), '');
process.stdout.write(out.join('\n') + '\n');

if (values.svg) {
  const m = run.machine;
  const subtitle = `${m.cpuModel}, ${m.cores} cores, ${m.node}, ${m.chromium}; ${run.mode} run, ${m.date.slice(0, 16).replace('T', ' ')} UTC`;
  await writeFile(values.svg, renderSvg('dcdn bench', subtitle, channel, http));
}
