/**
 * Section 3: how much the ingress's resident memory grows while a large body streams through
 * it (a download made in the tab, over werift). Flow control should keep it flat.
 */
import { readFileSync } from 'node:fs';
import type { Child } from './children.ts';
import { download } from './http-load.ts';
import { progress } from './progress.ts';

export interface MemoryResult {
  target: string;
  bytes: number;
  /** Growth is scaled linearly from `bytes` to 1 GiB when they differ (a conservative estimate). */
  scaledFromBytes: number | null;
  baselineMiB: number;
  peakMiB: number;
  minMiB: number;
  afterMiB: number;
  growthMiB: number;
  growthMiBPerGiB: number;
  mbps: number;
  /** RSS in MiB, sampled every `sampleMs`. */
  samples: number[];
  sampleMs: number;
  /** The ingress's own view at the RSS peak and at the end: V8 heap and off-heap buffers, MiB. */
  breakdown: { atPeak: HeapBreakdown | null; after: HeapBreakdown | null };
}

export interface HeapBreakdown {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const GiB = 1024 ** 3;

/** Streams `bytes` through the ingress at `url` (process `pid`), sampling its RSS. */
export async function runMemorySection(url: string, child: Child, bytes: number, label: string): Promise<MemoryResult> {
  const pid = child.proc.pid!;
  const sampleMs = 100;
  const samples: number[] = [];
  const breakdowns: HeapBreakdown[] = [];
  const ask = askMemory(child, breakdowns);
  // One small transfer first, so the baseline has the code paths loaded and the channel warm.
  await download(`${url}/bytes?n=${1024 * 1024}`, 1024 * 1024);
  await new Promise((r) => setTimeout(r, 1000));
  const baselineMiB = rssMiB(pid);
  const timer = setInterval(() => {
    samples.push(rssMiB(pid));
    if (samples.length % 3 === 0) ask();
  }, sampleMs);
  progress(`memory: streaming ${(bytes / 1024 ** 2).toFixed(0)} MiB through ${label} (ingress RSS ${baselineMiB.toFixed(1)} MiB)`);
  let mbps: number;
  try {
    mbps = await download(`${url}/bytes?n=${bytes}`, bytes, 1_800_000);
  } finally {
    clearInterval(timer);
  }
  ask();
  await new Promise((r) => setTimeout(r, 200));
  const afterMiB = rssMiB(pid);
  const atPeak = breakdowns.reduce<HeapBreakdown | null>((best, b) => (!best || b.rss > best.rss ? b : best), null);
  const peakMiB = Math.max(baselineMiB, afterMiB, ...samples);
  const growthMiB = peakMiB - baselineMiB;
  const result: MemoryResult = {
    target: label,
    bytes,
    scaledFromBytes: bytes === GiB ? null : bytes,
    baselineMiB,
    peakMiB,
    minMiB: Math.min(baselineMiB, afterMiB, ...samples),
    afterMiB,
    growthMiB,
    growthMiBPerGiB: growthMiB * (GiB / bytes),
    mbps,
    samples: downsample(samples, 300),
    sampleMs: sampleMs * Math.max(1, Math.ceil(samples.length / 300)),
    breakdown: { atPeak, after: breakdowns.at(-1) ?? null },
  };
  progress(`memory: ${mbps.toFixed(1)} MB/s, RSS ${baselineMiB.toFixed(1)} → peak ${peakMiB.toFixed(1)} MiB (+${growthMiB.toFixed(1)}${bytes === GiB ? '' : `, ${result.growthMiBPerGiB.toFixed(1)} per GiB scaled`})`);
  return result;
}

/** Asks the ingress child (bench/servers/dcdn.ts) for `process.memoryUsage()`; answers land in `into`. */
function askMemory(child: Child, into: HeapBreakdown[]): () => void {
  let buffered = '';
  child.proc.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('{"mem"')) continue;
      const m = (JSON.parse(line) as { mem: Record<keyof HeapBreakdown, number> }).mem;
      const mib = (n: number) => Math.round((n / 1024 ** 2) * 10) / 10;
      into.push({ rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers) });
    }
  });
  return () => void child.proc.stdin!.write('mem\n');
}

/** Resident set size of process `pid`, from /proc (Linux). */
function rssMiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) / 1024;
}

/** Keeps at most `max` samples, each the largest of the ones it stands for (peaks survive). */
function downsample(samples: number[], max: number): number[] {
  const step = Math.max(1, Math.ceil(samples.length / max));
  const out: number[] = [];
  for (let i = 0; i < samples.length; i += step) out.push(Math.max(...samples.slice(i, i + step)));
  return out;
}
