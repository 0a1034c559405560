/**
 * The latency waterfall alone, repeated: `node --import tsx bench/waterfall-only.ts [--reps 3]
 * [--requests 300] [--targets werift-1,ws-1]`. For A/B work on a cut: the same targets, taking
 * turns within each repetition, median of the per-repetition medians with their spread.
 * Loopback only; every child is stopped at the end.
 */
import { parseArgs } from 'node:util';
import { WATERFALL_SEGMENTS } from '../protocol/index.ts';
import { stopAllChildren } from './children.ts';
import { median } from './stats.ts';
import { AB_TARGETS, startTarget, TARGETS, type Target } from './targets.ts';
import { timedRequests, type WaterfallFigures } from './waterfall.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '3' }, requests: { type: 'string', default: '300' }, targets: { type: 'string', default: 'werift-1,ws-1' } } });
const keys = values.targets.split(',');
const targets: Target[] = [];
try {
  for (const key of keys) {
    const spec = [...TARGETS, ...AB_TARGETS].find((t) => t.key === key);
    if (!spec) throw new Error(`no target ${key}`);
    targets.push(await startTarget(spec));
  }
  const runs: Record<string, WaterfallFigures[]> = {};
  for (let rep = 0; rep < Number(values.reps); rep++) {
    const turn = targets.map((_, i) => targets[(i + rep) % targets.length]!);
    for (const t of turn) {
      if ('skipped' in t) continue;
      if (!t.operatorToken) throw new Error(`${t.spec.label}: no operator token`);
      (runs[t.spec.key] ??= []).push(await timedRequests(t.url, t.operatorToken, { requests: Number(values.requests), warmup: 50 }));
    }
  }
  for (const [name, fs] of Object.entries(runs)) {
    const cell = (xs: number[]) => `${median(xs)!.toFixed(0)} [${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)}]`;
    process.stdout.write(`${name}: total ${cell(fs.map((f) => f.totalUs!))} client ${cell(fs.map((f) => f.clientUs!))}\n`);
    for (const s of WATERFALL_SEGMENTS) process.stdout.write(`  ${s.padEnd(18)} ${cell(fs.map((f) => f.segmentsUs[s]))}\n`);
  }
} finally {
  await Promise.all(targets.map((t) => ('stop' in t ? t.stop() : undefined)));
  await stopAllChildren();
}
