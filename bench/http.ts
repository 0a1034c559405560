/**
 * Section 2, end to end over HTTP: every target under the same load from this process, the
 * targets taking turns within each repetition.
 */
import { download, load, upload, type LoadResult } from './http-load.ts';
import { processCpuUs } from './proc-cpu.ts';
import { progress } from './progress.ts';
import type { Target } from './targets.ts';

export interface HttpConfig {
  reps: number;
  /** Length of each autocannon run, whole seconds. */
  seconds: number;
  /** Bytes of each download and upload. */
  transferBytes: number;
  /** Downloads and uploads per target per repetition. */
  transfersPerRep: number;
}

export interface TargetRuns {
  label: string;
  skipped?: string;
  c1: LoadResult[];
  c50: LoadResult[];
  /**
   * The target's server process (the dcdn ingress, with its signaling) CPU µs per request over
   * each c50 run, from /proc; empty where /proc can't say. docs/performance.md
   * `ingressCpuUsPerRequest`.
   */
  c50CpuUsPerRequest: number[];
  downloadMbps: number[];
  uploadMbps: number[];
}

/** How often a target's warm-up is tried before the run gives up on it. */
const WARMUP_TRIES = 3;

export async function runHttpSection(config: HttpConfig, targets: Target[]): Promise<Record<string, TargetRuns>> {
  const runs: Record<string, TargetRuns> = {};
  for (const t of targets) {
    runs[t.spec.key] = { label: t.spec.label, c1: [], c50: [], c50CpuUsPerRequest: [], downloadMbps: [], uploadMbps: [] };
    if ('skipped' in t) runs[t.spec.key]!.skipped = t.skipped;
  }
  const live = targets.filter((t): t is Extract<Target, { url: string }> => 'url' in t);
  for (const t of live) {
    // Warm up JIT, connections and (on werift) the fresh data channel before anything counts.
    // A warm-up absorbs start-up effects (a target whose first burst lands while its tab is
    // still settling), so it is tried WARMUP_TRIES times; each failure is printed, and a target
    // that fails every time stops the run. Nothing measured is ever retried.
    const small = Math.min(config.transferBytes, 1024 * 1024);
    for (let attempt = 1; ; attempt++) {
      try {
        await load(`${t.url}/`, 10, 1);
        await download(`${t.url}/bytes?n=${small}`, small);
        await upload(`${t.url}/upload`, small);
        break;
      } catch (err) {
        // A bare "aborted" from a socket says nothing of which of the eight targets failed.
        const message = `warming up ${t.spec.label} (${t.url}): ${(err as Error).message}`;
        if (attempt >= WARMUP_TRIES) throw new Error(message, { cause: err });
        progress(`http: ${message}; trying again (${attempt}/${WARMUP_TRIES})`);
      }
    }
  }
  progress(`http: warmed up ${live.length} targets`);
  for (let rep = 0; rep < config.reps; rep++) {
    const turn = live.map((_, i) => live[(i + rep) % live.length]!);
    for (const t of turn) {
      const r = runs[t.spec.key]!;
      const c1 = await load(`${t.url}/`, 1, config.seconds);
      const cpuBefore = processCpuUs(t.pid);
      const c50 = await load(`${t.url}/`, 50, config.seconds);
      const cpuAfter = processCpuUs(t.pid);
      if (cpuBefore !== null && cpuAfter !== null && c50.responses > 0) r.c50CpuUsPerRequest.push((cpuAfter - cpuBefore) / c50.responses);
      r.c1.push(c1);
      r.c50.push(c50);
      for (let i = 0; i < config.transfersPerRep; i++) {
        r.downloadMbps.push(await download(`${t.url}/bytes?n=${config.transferBytes}`, config.transferBytes));
        r.uploadMbps.push(await upload(`${t.url}/upload`, config.transferBytes));
      }
      const failures = c1.failures + c50.failures;
      progress(
        `http rep ${rep + 1}/${config.reps} ${t.spec.label}: c1 ${c1.rps.toFixed(0)} req/s p50 ${c1.p50Ms?.toFixed(3)} ms, ` +
          `c50 ${c50.rps.toFixed(0)} req/s, down ${r.downloadMbps.at(-1)!.toFixed(1)} MB/s, up ${r.uploadMbps.at(-1)!.toFixed(1)} MB/s` +
          (failures ? `, ${failures} FAILED` : ''),
      );
    }
  }
  return runs;
}
