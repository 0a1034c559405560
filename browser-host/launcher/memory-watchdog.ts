import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** How often {@link RendererMemoryWatchdog} looks at the renderers by default, in ms. */
export const DEFAULT_MEMORY_CHECK_MS = 100;

/** Every how many checks the process tree is walked again to find new renderers. */
const WALK_EVERY = 5;

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
 * again from a fresh process. An app can overshoot by what it allocates in one interval; a new
 * renderer is found within five intervals (the tree is walked every fifth check: measured, one
 * check of a browser with a few tabs then costs ~0.5 ms of CPU).
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
  /** The processes found by the last walk of the tree, and how many checks ago it was. */
  #pids: number[] = [];
  #checksSinceWalk = Infinity;

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
    // Synchronous reads: procfs files are made in memory on read, and one async call per file
    // cost ~30 ms of CPU per check for a browser with a few tabs (measured), sync ones far less.
    // Walking the tree reads every thread's child list (the browser has dozens of threads), so it
    // is done every WALK_EVERY checks; the renderers already known are measured at every check.
    if (++this.#checksSinceWalk >= WALK_EVERY) {
      this.#checksSinceWalk = 0;
      this.#pids = this.#descendants(this.#rootPid);
      const alive = new Set(this.#pids);
      for (const pid of this.#isRenderer.keys()) if (!alive.has(pid)) this.#isRenderer.delete(pid);
    }
    const pids = this.#pids;
    const kills: RendererKill[] = [];
    for (const pid of pids) {
      if (!this.#renderer(pid)) continue;
      const usedKb = this.#privateKb(pid);
      if (usedKb === null || usedKb <= this.#limitKb) continue;
      // Between walks a pid could have been reused: kill only what is a renderer right now.
      this.#isRenderer.delete(pid);
      if (!this.#renderer(pid)) continue;
      try {
        this.#kill(pid, 'SIGKILL');
      } catch {
        continue; // exited meanwhile
      }
      this.#isRenderer.delete(pid);
      this.#pids = this.#pids.filter((p) => p !== pid);
      const kill = { pid, usedMb: Math.round(usedKb / 1024), limitMb: this.#limitMb };
      kills.push(kill);
      this.#onKill(kill);
    }
    return kills;
  }

  #descendants(root: number): number[] {
    const found: number[] = [];
    const queue = [root];
    while (queue.length > 0) {
      const pid = queue.shift()!;
      // Renderers start no processes of their own: most of the tree needs no walking.
      if (this.#isRenderer.get(pid) === true) continue;
      // A process's children are listed per thread that forked them.
      let tasks: string[];
      try {
        tasks = readdirSync(join(this.#proc, String(pid), 'task'));
      } catch {
        continue;
      }
      for (const task of tasks) {
        const text = readText(join(this.#proc, String(pid), 'task', task, 'children')) ?? '';
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

  #renderer(pid: number): boolean {
    const known = this.#isRenderer.get(pid);
    if (known !== undefined) return known;
    const cmdline = readText(join(this.#proc, String(pid), 'cmdline'));
    if (cmdline === null) return false;
    // A process still being set up by the zygote may not show its final command line yet: ask again.
    if (cmdline === '') return false;
    // Zygote children rewrite their title: arguments are then separated by spaces, not NULs.
    const renderer = /(^|[\s\0])--type=renderer([\s\0]|$)/.test(cmdline);
    this.#isRenderer.set(pid, renderer);
    return renderer;
  }

  #privateKb(pid: number): number | null {
    const status = readText(join(this.#proc, String(pid), 'status'));
    if (status === null) return null;
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return field('RssAnon') + field('VmSwap');
  }
}

/** A file's text, or null when it is gone (the process exited) or unreadable. */
function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
