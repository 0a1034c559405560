/**
 * The cluster's processes: `dcdn signal` and `dcdn ingress` nodes (and helper programs) as real
 * processes, optionally inside a network namespace (`ip netns exec`), each in its own process
 * group. Every process started through a {@link Procs} is killed by `killAll()` (call it in
 * afterAll: it runs even when a test failed), and its output is kept to print when a test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../cli.ts';

/** How long a node may take to answer its health check as ready. */
export const READY_TIMEOUT_MS = 30_000;
/** How long `stop()` waits for an exit after SIGTERM before SIGKILL. */
export const STOP_TIMEOUT_MS = 15_000;
/** Output kept per process (the tail). */
const MAX_LOG_CHARS = 200_000;

export interface SpawnOptions {
  /** For logs and messages: `s1`, `i2`, `redis`… */
  label: string;
  /** The program and its arguments (after any namespace prefix). */
  argv: string[];
  /** `['ip', 'netns', 'exec', NS]` to run inside a namespace. */
  prefix?: string[];
  env?: NodeJS.ProcessEnv;
}

export class Proc {
  readonly child: ChildProcess;
  #log = '';
  /** Characters printed in all (the kept log is its tail). */
  #printed = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stopped = false;

  constructor(readonly label: string, readonly argv: string[], prefix: string[], env: NodeJS.ProcessEnv) {
    const full = [...prefix, ...argv];
    // `ip netns exec` execs the command, so the pid (and group) is the program's own.
    this.child = spawn(full[0]!, full.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const keep = (d: Buffer) => {
      const text = d.toString();
      this.#printed += text.length;
      this.#log += text;
      if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything it printed (the last {@link MAX_LOG_CHARS}). */
  get log(): string {
    return this.#log;
  }

  /** Writes a line to its stdin (helper programs take commands this way). */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** How much it has printed so far: pass it to waitForLog to match only what comes after. */
  get logLength(): number {
    return this.#printed;
  }

  /** Resolves with the first match of `pattern` in its output (after `from`); fails if it exits first or after `ms`. */
  async waitForLog(pattern: RegExp, ms = READY_TIMEOUT_MS, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const dropped = this.#printed - this.#log.length;
      const m = pattern.exec(this.#log.slice(Math.max(0, from - dropped)));
      if (m) return m;
      if (!this.running) throw new Error(`${this.label} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.#log.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`${this.label}: no ${pattern} within ${ms} ms:\n${this.#log.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * Polls `ready` until it resolves true. A process that exits first fails with its output (the
   * usual way a missing CLI flag shows up: `unknown option --cluster`).
   */
  async waitReady(ready: () => Promise<boolean>, what: string, ms = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (!this.running) throw new Error(`${this.label} exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}:\n${this.#log.slice(-4000)}`);
      if (await ready().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${this.label}: not ${what} within ${ms} ms:\n${this.#log.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  #signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }

  /** SIGKILL (kill -9): no shutdown, sockets reset by the kernel. */
  async kill9(): Promise<void> {
    this.#signal('SIGCONT');
    this.#signal('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after {@link STOP_TIMEOUT_MS}. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.#stopped = true;
    this.#signal('SIGTERM');
    const timer = setTimeout(() => this.#signal('SIGKILL'), STOP_TIMEOUT_MS);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }

  /** SIGSTOP: a frozen machine (its kernel still accepts connections; nothing answers, nothing closes). */
  sigstop(): void {
    this.#signal('SIGSTOP');
  }

  sigcont(): void {
    this.#signal('SIGCONT');
  }

  get stoppedByTest(): boolean {
    return this.#stopped;
  }
}

/** Every process a test file started; `killAll()` in afterAll, `dumpLogs()` when a test failed. */
export class Procs {
  readonly all: Proc[] = [];
  readonly #dirs: string[] = [];

  /** A fresh DCDN_HOME for one node (its SQLite files, state), removed by killAll(). */
  home(label: string): string {
    const dir = mkdtempSync(join(tmpdir(), `dcdn-cluster-${label}-`));
    this.#dirs.push(dir);
    return dir;
  }

  spawn(options: SpawnOptions): Proc {
    const proc = new Proc(options.label, options.argv, options.prefix ?? [], options.env ?? { PATH: process.env.PATH });
    this.all.push(proc);
    return proc;
  }

  /** `dcdn ARGS` (the real CLI) with a home of its own and only the environment it needs. */
  dcdn(label: string, args: string[], options: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}): Proc {
    const home = this.home(label);
    return this.spawn({
      label,
      argv: [process.execPath, BIN, ...args],
      prefix: options.prefix,
      env: { PATH: process.env.PATH, HOME: home, DCDN_HOME: home, DCDN_LOG_FORMAT: 'json', ...options.env },
    });
  }

  /** A TypeScript helper program of this folder (`delay-proxy.ts`, `ns-gateway.ts`, `host-process.ts`). */
  helper(label: string, file: string, args: string[], options: { prefix?: string[] } = {}): Proc {
    return this.spawn({
      label,
      argv: [process.execPath, '--import', 'tsx', new URL(file, import.meta.url).pathname, ...args],
      prefix: options.prefix,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
  }

  /** The output of every process, labelled: print it when a test failed. */
  dumpLogs(maxPerProc = 6000): string {
    return this.all.map((p) => `----- ${p.label} (pid ${p.pid}, ${p.running ? 'running' : `exited ${p.child.exitCode ?? p.child.signalCode}`}) -----\n${p.log.slice(-maxPerProc)}`).join('\n');
  }

  /** SIGKILLs every process still running and removes the homes. Never throws. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((p) => p.kill9().catch(() => undefined)));
    for (const dir of this.#dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}
