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

export interface RedisTcpOptions {
  /** Address to bind (a namespace's veth address in cluster tests). Default 127.0.0.1. */
  host?: string;
  /** TCP port. Default: a free-looking port in 21000-21999 (the caller may pass a fixed one). */
  port?: number;
  /** Wraps the server's command, e.g. `['ip', 'netns', 'exec', 'dcdn-t-r1']`. */
  prefix?: string[];
}

export interface RedisTcpServer {
  host: string;
  port: number;
  /** `redis://HOST:PORT`. */
  url: string;
  /** SIGSTOPs the server: clients' commands get no answer and no error (a frozen machine). */
  pause(): void;
  /** SIGCONTs it after {@link pause}. */
  resume(): void;
  /** SIGKILLs it (its data is in memory only, so a restart comes back empty). */
  kill(): Promise<void>;
  /** Starts it again, empty, on the same address and port after kill(). */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
}

/**
 * redis-server on TCP, for the cluster tests: signaling nodes on other namespaces reach it over
 * the veth (or a delaying proxy), and the tests pause, kill and restart it. No persistence, so a
 * restart is an empty Redis (the "Redis restart, empty" fault of SCALE-OUT §3.12).
 * The readiness probe runs inside `prefix` too (a namespace address is not reachable from here),
 * through `redis-cli`.
 */
export async function startRedisTcp(options: RedisTcpOptions = {}): Promise<RedisTcpServer> {
  if (spawnSync(REDIS_SERVER, ['--version']).error) {
    throw new Error(`${REDIS_SERVER} is not installed: the cluster tests need a real Redis (apt-get install redis-server; .ci/run does this)`);
  }
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 21_000 + Math.floor(Math.random() * 1000);
  const prefix = options.prefix ?? [];
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-redis-tcp-'));
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const launch = async () => {
    const argv = [...prefix, REDIS_SERVER, '--bind', host, '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--maxmemory-policy', 'noeviction'];
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      if (output.length < 20_000) output += d.toString();
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    child = proc;
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!/Ready to accept connections/.test(output)) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`${REDIS_SERVER} did not start on ${host}:${port}: ${output.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const signal = (sig: NodeJS.Signals) => {
    // With a prefix (`ip netns exec`), the prefix execs redis-server, so the pid is the server's.
    const proc = child as ChildProcess | null;
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
  };
  const kill = async () => {
    signal('SIGCONT');
    signal('SIGKILL');
    await exited;
  };
  await launch();
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
