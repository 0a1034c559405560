/**
 * A real server (PostgreSQL, redis-server) shared by the tests of one file, with a plain client
 * to look at what a store wrote. Started before the file's tests and stopped after; when it
 * cannot start, every test that asks for it fails with the reason instead of being skipped, so a
 * backend is never silently untested.
 *
 * @example
 * ```ts
 * const redis = sharedServer(startRedis, (s) => new Redis({ path: s.socket }), (r) => r.disconnect());
 * it('…', async () => { await redis.raw.keys('*'); connect(redis.server.socket); });
 * ```
 */
import { afterAll, beforeAll } from 'vitest';

export interface SharedServer<S, R> {
  /** The server; throws why it could not be started. */
  readonly server: S;
  /** The plain client on it. */
  readonly raw: R;
}

export function sharedServer<S extends { stop(): Promise<void> }, R>(start: () => Promise<S>, client: (server: S) => R | Promise<R>, closeClient: (raw: R) => unknown, startTimeoutMs = 60_000): SharedServer<S, R> {
  let started: { server: S; raw: R } | undefined;
  let startError: unknown;
  beforeAll(async () => {
    let server: S | undefined;
    try {
      server = await start();
      started = { server, raw: await client(server) };
    } catch (err) {
      await server?.stop();
      startError = err;
    }
  }, startTimeoutMs);
  afterAll(async () => {
    if (!started) return;
    await Promise.resolve(closeClient(started.raw)).catch(() => {});
    await started.server.stop();
  });
  const get = () => {
    if (!started) throw startError;
    return started;
  };
  return {
    get server() {
      return get().server;
    },
    get raw() {
      return get().raw;
    },
  };
}
