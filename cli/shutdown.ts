/**
 * How a long-running command stops: the first SIGINT (Ctrl-C), SIGTERM or SIGHUP starts a drain
 * (the command's `stop`: stop accepting, let in-flight work finish within its grace, close);
 * a second one exits at once with 130. Handlers go in before anything starts, so a signal that
 * arrives while the parts are still starting is not lost (nor does it kill the process with
 * half of them up): the drain runs as soon as the start is over.
 */
import type { LogFn } from './log.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface ShutdownTrap {
  /** The signal that asked for the stop, once one has. */
  readonly requested: NodeJS.Signals | null;
  /** Waits for the first signal, then runs `stop`; resolves when it is done. */
  untilStopped(stop: () => Promise<void>): Promise<void>;
}

/** Installs the handlers; call before starting anything. */
export function trapShutdown(log: LogFn): ShutdownTrap {
  let requested: NodeJS.Signals | null = null;
  let signalled!: () => void;
  const first = new Promise<void>((resolve) => (signalled = resolve));
  const handler = (signal: NodeJS.Signals) => {
    if (requested) {
      log('warn', `second ${signal}: exiting now, cutting what is in flight`);
      process.exit(130);
    }
    requested = signal;
    log('info', `${signal}: shutting down (again to force); in-flight requests finish first`);
    signalled();
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    get requested() {
      return requested;
    },
    async untilStopped(stop) {
      await first;
      try {
        await stop();
      } catch (err) {
        log('error', 'shutdown failed', { err: (err as Error).message });
        process.exitCode = 1;
      }
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}
