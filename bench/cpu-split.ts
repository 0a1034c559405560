/**
 * Where the CPU goes per request: runs hello-world load against dcdn targets (each a child
 * process, as in the benchmark) and reads `utime + stime` from /proc for the ingress process,
 * every Chromium process (grouped by role: browser, renderer, network service, GPU, other
 * utility) and this process (the load generator), before and after the load.
 *
 *   node --import tsx bench/cpu-split.ts [--connections 50] [--seconds 10] [--targets werift,websocket]
 *
 * Prints one table per connection count: CPU µs per request for each process group, and the
 * share of the machine's cores they add up to. Linux only (/proc). Loopback only; each load is
 * bounded by --seconds.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { spawnScript, stopAllChildren, stopChild } from './children.ts';
import { load } from './http-load.ts';
import { processCpuUs as cpuUs } from './proc-cpu.ts';

const TARGETS: Record<string, string[]> = {
  werift: ['--transport', 'webrtc', '--rtc', 'werift'],
  'node-datachannel': ['--transport', 'webrtc', '--rtc', 'node-datachannel'],
  websocket: ['--transport', 'websocket'],
};

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1,50' },
    seconds: { type: 'string', default: '10' },
    targets: { type: 'string', default: 'werift,websocket' },
    hosts: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`usage: node --import tsx bench/cpu-split.ts [--connections 1,50] [--seconds 10] [--targets werift,websocket,node-datachannel] [--hosts 1]\n`);
  process.exit(0);
}

/** The role of a Chromium process, from its command line. */
function roleOf(pid: number): string {
  let cmd: string;
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return 'gone';
  }
  const type = /--type=(\S+)/.exec(cmd)?.[1];
  if (!type) return 'chromium browser';
  if (type === 'renderer') return 'chromium renderer';
  if (type === 'gpu-process') return 'chromium gpu';
  if (type === 'utility') return /NetworkService/i.test(cmd) ? 'chromium network service' : 'chromium utility';
  return `chromium ${type}`;
}

/** `root` and every process below it. */
function tree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

function snapshot(groups: Map<string, number[]>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [group, pids] of groups) out.set(group, pids.reduce((sum, pid) => sum + (cpuUs(pid) ?? 0), 0));
  return out;
}

const seconds = Number(values.seconds);
const connectionCounts = values.connections.split(',').map(Number);
const rows: Array<{ target: string; connections: number; rps: number; p50Ms: number | null; perRequestUs: Record<string, number>; cores: number }> = [];

process.on('SIGINT', () => void stopAllChildren().then(() => process.exit(130)));
try {
  for (const target of values.targets.split(',')) {
    const args = TARGETS[target];
    if (!args) throw new Error(`unknown target ${target}; known: ${Object.keys(TARGETS).join(', ')}`);
    const child = spawnScript(target, 'servers/dcdn.ts', ['--hosts', values.hosts, ...args, '--exit-with-parent']);
    const ready = await child.ready;
    if (ready.skipped || ready.error) {
      process.stderr.write(`${target}: ${String(ready.skipped ?? ready.error)}\n`);
      await stopChild(child);
      continue;
    }
    const url = `${String(ready.url)}/`;
    const groups = new Map<string, number[]>([['ingress (node)', [Number(ready.pid)]], ['load generator', [process.pid]]]);
    for (const pid of tree(Number(ready.browserPid))) {
      const role = roleOf(pid);
      groups.set(role, [...(groups.get(role) ?? []), pid]);
    }
    await load(url, 10, 2); // warm up
    for (const connections of connectionCounts) {
      process.stderr.write(`${target}: ${connections} connections for ${seconds} s\n`);
      const before = snapshot(groups);
      const t0 = performance.now();
      const result = await load(url, connections, seconds);
      const wallUs = (performance.now() - t0) * 1000;
      const after = snapshot(groups);
      const perRequestUs: Record<string, number> = {};
      let total = 0;
      for (const [group, us] of after) {
        const used = us - (before.get(group) ?? 0);
        total += used;
        perRequestUs[group] = used / Math.max(1, result.responses);
      }
      rows.push({ target, connections, rps: result.rps, p50Ms: result.p50Ms, perRequestUs, cores: total / wallUs });
    }
    await stopChild(child);
  }
} finally {
  await stopAllChildren();
}

const groupNames = [...new Set(rows.flatMap((r) => Object.keys(r.perRequestUs)))].filter((g) => rows.some((r) => r.perRequestUs[g]! >= 1));
process.stdout.write(`CPU µs per request (hello world), ${seconds} s per load, ${availableParallelism()} cores\n`);
process.stdout.write(`| target | conns | req/s | p50 ms | ${groupNames.join(' | ')} | total µs | cores busy |\n|${'---|'.repeat(groupNames.length + 6)}\n`);
for (const r of rows) {
  const total = groupNames.reduce((s, g) => s + (r.perRequestUs[g] ?? 0), 0);
  process.stdout.write(
    `| ${r.target} | ${r.connections} | ${Math.round(r.rps)} | ${r.p50Ms?.toFixed(2) ?? '-'} | ${groupNames.map((g) => Math.round(r.perRequestUs[g] ?? 0)).join(' | ')} | ${Math.round(total)} | ${r.cores.toFixed(2)} |\n`,
  );
}
process.exit(0);
