import type { Log } from './log.ts';

/**
 * Runs `stop` on the first SIGINT or SIGTERM; a second signal exits at once.
 * Resolves when the shutdown finished.
 */
export function onShutdown(log: Log, stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: string) => {
      if (stopping) {
        log('warn', `second ${signal}: exiting now`);
        process.exit(130);
      }
      stopping = true;
      log('info', `${signal}: shutting down (again to force)`);
      stop().then(resolve, (err: Error) => {
        log('error', 'shutdown failed', { err: err.message });
        resolve();
      });
    };
    process.on('SIGINT', () => handler('SIGINT'));
    process.on('SIGTERM', () => handler('SIGTERM'));
  });
}
