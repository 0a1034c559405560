/**
 * The child processes the benchmark starts (servers, ingresses, workerd), tracked so that every
 * one of them, and any browser they report, is ended on every way out: normal end, error,
 * Ctrl-C. Children also watch their stdin and shut down when this process goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** The last lines the child wrote to stderr, for error messages. */
  readonly stderrTail: string[];
  /** Resolves with the first JSON object the child prints on stdout. */
  readonly ready: Promise<Record<string, unknown>>;
  /** The Chromium the child launched, if it reported one (`browserPid` in its ready line). */
  browserPid?: number;
}

const live = new Set<Child>();

/**
 * Starts `script` (a TypeScript file under bench/) in its own Node process. `nodeArgs` go to
 * Node (e.g. `--cpu-prof`), `args` to the script.
 */
export function spawnScript(name: string, script: string, args: string[], options: { nodeArgs?: string[]; readyTimeoutMs?: number } = {}): Child {
  const path = fileURLToPath(new URL(script, import.meta.url));
  return spawnProcess(name, process.execPath, [...(options.nodeArgs ?? []), '--import', TSX_LOADER, path, ...args], { readyTimeoutMs: options.readyTimeoutMs });
}

/** Starts any program; `ready` resolves on its first JSON line (never, for programs printing none). */
export function spawnProcess(name: string, command: string, args: string[], options: { cwd?: string; readyTimeoutMs?: number } = {}): Child {
  const proc = spawn(command, args, { cwd: options.cwd ?? REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
  const stderrTail: string[] = [];
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderrTail.push(...chunk.split('\n').filter(Boolean));
    stderrTail.splice(0, Math.max(0, stderrTail.length - 40));
    if (process.env.DCDN_BENCH_VERBOSE) process.stderr.write(chunk.replace(/^/gm, `  [${name}] `));
  });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(failure(`${name} was not ready within ${options.readyTimeoutMs ?? 60_000} ms`)), options.readyTimeoutMs ?? 60_000);
    proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const message = JSON.parse(line) as Record<string, unknown>;
          clearTimeout(timer);
          if (typeof message.browserPid === 'number') child.browserPid = message.browserPid;
          resolve(message);
        } catch {
          // not ours: keep reading
        }
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(failure(`${name} exited (${signal ?? code}) before it was ready`));
    });
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(failure(`${name} failed to start: ${err.message}`));
    });
  });
  ready.catch(() => undefined);
  const child: Child = { name, proc, stderrTail, ready };
  live.add(child);
  proc.once('exit', () => live.delete(child));
  return child;

  function failure(message: string): Error {
    return new Error(`${message}${stderrTail.length ? `\n    ${stderrTail.slice(-12).join('\n    ')}` : ''}`);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export async function stopChild(child: Child, graceMs = 10_000): Promise<void> {
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  killOrphanBrowser(child);
}

/** Stops every live child, in parallel. */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => stopChild(c)));
}

/** Last resort, synchronous (for `process.on('exit')`): SIGKILL whatever is still running. */
export function killAllChildrenNow(): void {
  for (const c of live) {
    c.proc.kill('SIGKILL');
    killOrphanBrowser(c);
  }
}

/**
 * A child killed before it could close its Chromium leaves it running. Killed by pid, and only
 * if that pid is still a Chromium (a pid can be reused once its process is gone).
 */
function killOrphanBrowser(child: Child): void {
  const pid = child.browserPid;
  if (pid === undefined) return;
  child.browserPid = undefined;
  try {
    if (!/chrom/i.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
