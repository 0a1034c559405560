/**
 * A long-running `dcdn` command (`up`, `signal`, …) as a real process in a process group of its
 * own, so that a test can signal the whole group the way a terminal's Ctrl-C does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from './cli.ts';

export interface DcdnProcess {
  readonly child: ChildProcess;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or 128 + signal number) once the process has exited. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until stdout or stderr matches `pattern`; fails if the process exits first. */
  waitFor(pattern: RegExp, what: string): Promise<RegExpMatchArray>;
  /** Sends `signal` to the whole process group, as a terminal does. */
  signalGroup(signal: NodeJS.Signals): void;
  /** SIGKILLs the group if it still runs (test cleanup). */
  kill(): Promise<void>;
}

export function startDcdn(args: string[], env: NodeJS.ProcessEnv, options: { cwd?: string } = {}): DcdnProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const poke = () => {
    for (const w of waiters) w();
  };
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    poke();
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    poke();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exited = false;
  void exit.then(() => {
    exited = true;
    poke();
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitFor(pattern, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(out) ?? pattern.exec(err);
          if (m) {
            waiters.delete(check);
            resolve(m);
          } else if (exited) {
            waiters.delete(check);
            reject(new Error(`dcdn ${args.join(' ')} exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${out}\n${err}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    signalGroup(signal) {
      process.kill(-child.pid!, signal);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch (e) {
        // ESRCH: the group is gone already.
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
      await exit;
    },
  };
}
