/**
 * The larger UDP receive buffer end to end: two dcdn werift targets (bench/servers/dcdn.ts, one
 * tab each), one started with bench/udp-rcvbuf-preload.mjs and DCDN_BENCH_UDP_RCVBUF=N, one
 * without, measured in turns: hello world at 1 and 50 connections, 10 MiB downloads (the tab
 * sends, werift receives) and uploads. Also the datagrams the kernel dropped at the ingress's
 * UDP sockets for a full receive buffer (/proc/net/udp `drops` of the sockets the ingress
 * process holds).
 *
 *   node --import tsx bench/udp-rcvbuf-e2e.ts [--reps 5] [--buffer 4194304] [--seconds 2] [--mib 10]
 *
 * Loopback only; every load is bounded; both targets are stopped at the end and on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnScript, stopAllChildren, stopChild, type Child } from './children.ts';
import { download, load, upload } from './http-load.ts';
import { progress } from './progress.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    buffer: { type: 'string', default: '4194304' },
    seconds: { type: 'string', default: '2' },
    mib: { type: 'string', default: '10' },
  },
});
const reps = Number(values.reps);
const buffer = Number(values.buffer);
const seconds = Number(values.seconds);
const bytes = Number(values.mib) * 1024 * 1024;
const PRELOAD = fileURLToPath(new URL('./udp-rcvbuf-preload.mjs', import.meta.url));

/** Summed `drops` of the UDP sockets process `pid` holds. */
function drops(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let sum = 0;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 13 && inodes.has(f[9]!)) sum += Number(f[f.length - 1]);
  }
  return sum;
}

/** The kernel's receive buffers (`rb` in `ss -m`) of the UDP sockets process `pid` holds. */
function receiveBuffers(pid: number): number[] {
  const out = execFileSync('ss', ['-uanmp'], { encoding: 'utf8', timeout: 5000 });
  // With -m, each socket's skmem follows its line (same line or the next, by ss version).
  return [...out.replace(/\n\s+skmem/g, ' skmem').matchAll(new RegExp(`pid=${pid},[^\n]*?rb(\\d+)`, 'g'))].map((x) => Number(x[1]));
}

interface Variant {
  label: string;
  child: Child;
  url: string;
  pid: number;
  c1: number[];
  c1p50: number[];
  c50: number[];
  down: number[];
  up: number[];
  downDrops: number[];
  /** Transfers that failed or took longer than TRANSFER_TIMEOUT_MS (they count as missing). */
  failed: string[];
}

const TRANSFER_TIMEOUT_MS = 60_000;

/** A transfer, or null (recorded in `v.failed`) when it fails or stalls. */
async function attempt(v: Variant, what: string, run: () => Promise<number>): Promise<number | null> {
  try {
    return await run();
  } catch (err) {
    v.failed.push(`${what}: ${(err as Error).message}`);
    progress(`${v.label}: ${what} FAILED: ${(err as Error).message}`);
    return null;
  }
}

process.on('SIGINT', () => void stopAllChildren().then(() => process.exit(130)));
const load0 = loadavg();
const variants: Variant[] = [];
try {
  for (const size of [0, buffer]) {
    if (size > 0) process.env.DCDN_BENCH_UDP_RCVBUF = String(size);
    const child = spawnScript(`werift-rb${size}`, './servers/dcdn.ts', ['--hosts', '1', '--transport', 'webrtc', '--rtc', 'werift', '--exit-with-parent'], {
      nodeArgs: size > 0 ? ['--import', PRELOAD] : [],
      readyTimeoutMs: 90_000,
    });
    delete process.env.DCDN_BENCH_UDP_RCVBUF;
    const ready = await child.ready;
    if (ready.error || ready.skipped) throw new Error(String(ready.error ?? ready.skipped));
    progress(`${size > 0 ? size : 'default'}: ingress pid ${String(ready.pid)}, UDP receive buffers ${receiveBuffers(Number(ready.pid)).join(', ') || 'none yet'}`);
    variants.push({ label: size > 0 ? `${size / 1024} KiB` : 'default', child, url: String(ready.url), pid: Number(ready.pid), c1: [], c1p50: [], c50: [], down: [], up: [], downDrops: [], failed: [] });
  }
  for (const v of variants) {
    await load(`${v.url}/`, 10, 1);
    await attempt(v, 'warm-up download', () => download(`${v.url}/bytes?n=${1024 * 1024}`, 1024 * 1024, TRANSFER_TIMEOUT_MS));
    await attempt(v, 'warm-up upload', () => upload(`${v.url}/upload`, 1024 * 1024, TRANSFER_TIMEOUT_MS));
  }
  for (const v of variants) progress(`${v.label}: ingress UDP receive buffers after warm-up ${receiveBuffers(v.pid).join(', ')}`);
  for (let rep = 0; rep < reps; rep++) {
    const turn = variants.map((_, i) => variants[(i + rep) % variants.length]!);
    for (const v of turn) {
      const c1 = await load(`${v.url}/`, 1, seconds);
      const c50 = await load(`${v.url}/`, 50, seconds);
      const d0 = drops(v.pid);
      const down: number[] = [];
      for (let i = 0; i < 2; i++) {
        const mbps = await attempt(v, `rep ${rep + 1} download`, () => download(`${v.url}/bytes?n=${bytes}`, bytes, TRANSFER_TIMEOUT_MS));
        if (mbps !== null) down.push(mbps);
      }
      v.downDrops.push(drops(v.pid) - d0);
      const up = (await attempt(v, `rep ${rep + 1} upload`, () => upload(`${v.url}/upload`, bytes, TRANSFER_TIMEOUT_MS))) ?? NaN;
      v.c1.push(c1.rps);
      v.c1p50.push(c1.p50Ms ?? NaN);
      v.c50.push(c50.rps);
      v.down.push(...down);
      v.up.push(up);
      progress(`rep ${rep + 1}/${reps} ${v.label}: c1 ${c1.rps.toFixed(0)} req/s p50 ${c1.p50Ms?.toFixed(3)} ms, c50 ${c50.rps.toFixed(0)} req/s, down ${down.map((x) => x.toFixed(1)).join(', ')} MB/s (drops ${v.downDrops.at(-1)}), up ${up.toFixed(1)} MB/s`);
    }
  }
} finally {
  await Promise.all(variants.map((v) => stopChild(v.child)));
  await stopAllChildren();
}
const load1 = loadavg();
const m = (xs: number[], d: number) => median(xs)?.toFixed(d) ?? '-';
process.stdout.write(
  `dcdn werift 1 tab, ingress UDP receive buffer default vs ${buffer / 1024} KiB: medians of ${reps} interleaved repetitions (downloads: 2 per repetition); ` +
    `load ${load0.map((l) => l.toFixed(2)).join(' ')} at the start, ${load1.map((l) => l.toFixed(2)).join(' ')} at the end\n` +
    `| ingress rcvbuf | c1 req/s | c1 p50 ms | c50 req/s | down MB/s | up MB/s | ingress drops per 2 downloads |\n|---|---|---|---|---|---|---|\n` +
    variants.map((v) => `| ${v.label} | ${m(v.c1, 0)} | ${m(v.c1p50, 3)} | ${m(v.c50, 0)} | ${m(v.down, 1)} | ${m(v.up, 1)} | ${m(v.downDrops, 0)} |`).join('\n') +
    '\n' +
    variants.flatMap((v) => v.failed.map((f) => `${v.label}: ${f}\n`)).join(''),
);
process.exit(0);
