import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** How often {@link RendererMemoryWatchdog} looks at the renderers by default, in ms. */
export const DEFAULT_MEMORY_CHECK_MS = 100;

/** A renderer the watchdog ended. */
export interface RendererKill {
  pid: number;
  /** Its private resident memory (plus swap) when it was seen over the limit, in MiB. */
  usedMb: number;
  limitMb: number;
}

export interface RendererMemoryWatchdogOptions {
  /** The browser's process id: its descendants started with `--type=renderer` are watched. */
  rootPid: number;
  /** Private memory per renderer process, in MiB; a renderer seen above it is SIGKILLed. */
  limitMb: number;
  /** How often to look, in ms. Default {@link DEFAULT_MEMORY_CHECK_MS}. */
  intervalMs?: number;
  /** Called after each kill (for a log line). */
  onKill?: (kill: RendererKill) => void;
  /** Where procfs is mounted (tests). Default `/proc`. */
  procRoot?: string;
  /** Sends the signal (tests). Default `process.kill`. */
  kill?: (pid: number, signal: NodeJS.Signals) => void;
}

/**
 * Bounds the memory of each renderer process of a Chromium, whatever it is spent on.
 *
 * V8's `--max-old-space-size` bounds only the JavaScript heap: the backing stores of
 * `ArrayBuffer`s and typed arrays, WebAssembly memories and Blink's own allocations live
 * outside it (issue 15.8: a handler allocating `Float64Array`s with an `await` between them grew
 * its renderer to 5.3 GiB under a 512 MiB heap limit). The browser gives a page no way to bound
 * them, and a worker cannot be stopped from inside, so this looks from outside: every
 * `intervalMs` it reads each renderer's private resident memory (`RssAnon` plus `VmSwap` of
 * /proc/PID/status: the heap, array buffers, wasm memories and strings all land there; shared
 * file mappings such as Chromium's own code do not) and SIGKILLs one that is over the limit. With
 * one process per app sandbox (launch.ts, per-document grouping) that ends that app alone: its
 * sandbox sees the frame go silent and fails its requests with HOST_SANDBOX_CRASHED, then serves
 * again from a fresh process. An app can overshoot by what it allocates in one interval.
 *
 * Linux only (procfs): elsewhere {@link RendererMemoryWatchdog.supported} is false and only the
 * V8 heap limit applies.
 */
export class RendererMemoryWatchdog {
  readonly #rootPid: number;
  readonly #limitKb: number;
  readonly #limitMb: number;
  readonly #intervalMs: number;
  readonly #onKill: (kill: RendererKill) => void;
  readonly #proc: string;
  readonly #kill: (pid: number, signal: NodeJS.Signals) => void;
  /** Whether each pid seen is a renderer (command lines never change; pids leave the map when gone). */
  readonly #isRenderer = new Map<number, boolean>();
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  constructor(options: RendererMemoryWatchdogOptions) {
    if (!Number.isInteger(options.limitMb) || options.limitMb < 1) throw new TypeError(`limitMb must be a positive integer, got ${options.limitMb}`);
    this.#rootPid = options.rootPid;
    this.#limitMb = options.limitMb;
    this.#limitKb = options.limitMb * 1024;
    this.#intervalMs = options.intervalMs ?? DEFAULT_MEMORY_CHECK_MS;
    this.#onKill = options.onKill ?? (() => {});
    this.#proc = options.procRoot ?? '/proc';
    this.#kill = options.kill ?? ((pid, signal) => process.kill(pid, signal));
  }

  /** Whether this system has what the watchdog reads (Linux procfs). */
  static get supported(): boolean {
    return process.platform === 'linux';
  }

  /** Starts looking every `intervalMs`; the timer does not keep Node alive. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      // A slow /proc read (loaded machine) skips a tick rather than piling checks up.
      this.#running ??= this.check()
        .then(() => undefined, () => undefined)
        .finally(() => (this.#running = null));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops looking; resolves once a check in progress is over. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One look at every renderer: kills those over the limit and returns what it killed. */
  async check(): Promise<RendererKill[]> {
    const pids = await this.#descendants(this.#rootPid);
    const alive = new Set(pids);
    for (const pid of this.#isRenderer.keys()) if (!alive.has(pid)) this.#isRenderer.delete(pid);
    const kills: RendererKill[] = [];
    for (const pid of pids) {
      if (!(await this.#renderer(pid))) continue;
      const usedKb = await this.#privateKb(pid);
      if (usedKb === null || usedKb <= this.#limitKb) continue;
      try {
        this.#kill(pid, 'SIGKILL');
      } catch {
        continue; // exited meanwhile
      }
      const kill = { pid, usedMb: Math.round(usedKb / 1024), limitMb: this.#limitMb };
      kills.push(kill);
      this.#onKill(kill);
    }
    return kills;
  }

  async #descendants(root: number): Promise<number[]> {
    const found: number[] = [];
    const queue = [root];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      // A process's children are listed per thread that forked them.
      let tasks: string[];
      try {
        tasks = await readdir(join(this.#proc, String(pid), 'task'));
      } catch {
        continue;
      }
      for (const task of tasks) {
        const text = await readFile(join(this.#proc, String(pid), 'task', task, 'children'), 'utf8').catch(() => '');
        for (const child of text.split(' ')) {
          const n = Number(child);
          if (child.trim() !== '' && Number.isInteger(n)) {
            found.push(n);
            queue.push(n);
          }
        }
      }
    }
    return found;
  }

  async #renderer(pid: number): Promise<boolean> {
    const known = this.#isRenderer.get(pid);
    if (known !== undefined) return known;
    const cmdline = await readFile(join(this.#proc, String(pid), 'cmdline'), 'utf8').catch(() => null);
    if (cmdline === null) return false;
    // A process still being set up by the zygote may not show its final command line yet: ask again.
    if (cmdline === '') return false;
    // Zygote children rewrite their title: arguments are then separated by spaces, not NULs.
    const renderer = /(^|[\s\0])--type=renderer([\s\0]|$)/.test(cmdline);
    this.#isRenderer.set(pid, renderer);
    return renderer;
  }

  async #privateKb(pid: number): Promise<number | null> {
    const status = await readFile(join(this.#proc, String(pid), 'status'), 'utf8').catch(() => null);
    if (status === null) return null;
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return field('RssAnon') + field('VmSwap');
  }
}
