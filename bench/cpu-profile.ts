/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`, e.g. `dcdn bench --profile DIR`): the
 * functions with the most self time, and self time by where the code lives.
 *
 *   node --import tsx bench/cpu-profile.ts FILE.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  functions: Array<{ name: string; where: string; area: string; selfMs: number; share: number }>;
  areas: Array<{ area: string; selfMs: number; share: number }>;
}

/** Which part of the stack a script URL belongs to. */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : 'native/builtin';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?:lib\/)?([^/]+)?/.exec(url);
  if (pkg) return pkg[1] === 'werift' && pkg[2] ? `werift/${pkg[2]}` : pkg[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const own = /\/(protocol|ingress|signaling|cli|bench|browser-host)\//.exec(url);
  return own ? `dcdn ${own[1]}` : url;
}

export function summariseProfile(profile: Profile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample: charge it to the sample it precedes.
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000));
  const functions = new Map<string, { name: string; where: string; area: string; selfMs: number }>();
  const areas = new Map<string, number>();
  let idleMs = 0;
  let totalMs = 0;
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    totalMs += ms;
    const name = functionName || '(anonymous)';
    const where = url ? `${url.replace(/^file:\/\/.*?\/(node_modules|protocol|ingress|signaling|cli|bench|browser-host)\//, '$1/')}:${lineNumber + 1}` : '';
    const area = areaOf(url, name);
    const key = `${name} ${where}`;
    const f = functions.get(key) ?? { name, where, area, selfMs: 0 };
    f.selfMs += ms;
    functions.set(key, f);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const share = (ms: number) => (totalMs ? ms / totalMs : 0);
  return {
    totalMs,
    idleMs,
    functions: [...functions.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, top).map((f) => ({ ...f, share: share(f.selfMs) })),
    areas: [...areas].map(([area, selfMs]) => ({ area, selfMs, share: share(selfMs) })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  for (const file of positionals) {
    const s = summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top));
    const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
    process.stdout.write(`${file}\nbusy ${(s.totalMs / 1000).toFixed(1)} s, idle ${(s.idleMs / 1000).toFixed(1)} s\n\nself time by area:\n`);
    for (const a of s.areas.slice(0, 15)) process.stdout.write(`  ${pct(a.share)}  ${(a.selfMs / 1000).toFixed(2).padStart(7)} s  ${a.area}\n`);
    process.stdout.write(`\ntop functions by self time:\n`);
    for (const f of s.functions) process.stdout.write(`  ${pct(f.share)}  ${f.name}  ${f.where}\n`);
    process.stdout.write('\n');
  }
}
