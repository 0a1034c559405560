/**
 * A real redis-server for tests and the KV benchmark (a dev tool: nothing shipped imports
 * tools/), on a unix socket in a fresh temp dir (no port to collide on,
 * nothing reachable from outside). CI installs Debian's redis-server (.ci/run); without it the
 * tests that need Redis fail with a clear message rather than skip, so the Redis backend is never
 * silently untested.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
/** How long redis-server may take to answer its first PING. */
const START_TIMEOUT_MS = 10_000;

export interface RedisServer {
  socket: string;
  /** The store spec for it: `redis+unix:///…/redis.sock`. */
  url: string;
  /** Kills it (SIGKILL: tests use it to cut Redis off abruptly) and removes its directory. */
  stop(): Promise<void>;
}

/** Starts redis-server and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  if (spawnSync(REDIS_SERVER, ['--version']).error) {
    throw new Error(`${REDIS_SERVER} is not installed: the Redis KV tests need a real Redis (apt-get install redis-server; .ci/run does this)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-redis-'));
  const socket = join(dir, 'redis.sock');
  const child: ChildProcess = spawn(REDIS_SERVER, ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await pings(socket))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`${REDIS_SERVER} did not start on ${socket}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { socket, url: `redis+unix://${socket}`, stop };
}

function pings(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = connect(socket);
    const done = (ok: boolean) => {
      conn.destroy();
      resolve(ok);
    };
    conn.once('error', () => done(false));
    conn.once('connect', () => conn.write('PING\r\n'));
    conn.once('data', (data) => done(data.toString().startsWith('+PONG')));
    conn.setTimeout(1000, () => done(false));
  });
}
