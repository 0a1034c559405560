/**
 * A real PostgreSQL server for tests and benchmarks (a dev tool: nothing shipped imports tools/).
 * Debian's postgresql refuses to run as root, so as root it runs as the `postgres` user through
 * `runuser`; its data directory is a fresh temp dir, trust auth, fsync off (a killed server loses nothing; only an OS crash could), and it listens on a unix socket in
 * that dir (and on TCP only when asked: cluster tests bind a namespace address). CI installs
 * Debian's postgresql (.ci/run); without it the tests that need Postgres fail with a clear message
 * rather than skip, so the Postgres parts are never silently untested.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/** How long postgres may take to accept its first connection. */
const START_TIMEOUT_MS = 30_000;

export interface PostgresOptions {
  /** Also listen on TCP at this address (default: unix socket only). */
  host?: string;
  /** The TCP port (default 5432 when `host` is set; the socket name uses it too). */
  port?: number;
  /** Wraps the server's command, e.g. `['ip', 'netns', 'exec', 'ns1']`. */
  prefix?: string[];
}

export interface PostgresServer {
  /** The data and socket directory. */
  dir: string;
  port: number;
  /** `postgres://postgres@/postgres?host=DIR&port=PORT` (unix socket), or over TCP when `host` was given. */
  url: string;
  /** A connection URL for another database on the same server. */
  urlFor(database: string): string;
  /** Creates a database (owned by `postgres`). */
  createDatabase(name: string): Promise<void>;
  /** SIGKILLs the postmaster (a crash: no shutdown checkpoint), keeping its data. */
  kill(): Promise<void>;
  /** Starts it again on the same data and port after kill(). */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
}

function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'postgres'))) return join(root, v, 'bin');
  throw new Error('PostgreSQL is not installed: the Postgres tests need a real server (apt-get install postgresql; .ci/run does this)');
}

/** Runs a command as the `postgres` user when we are root (Postgres refuses root). */
function asPostgres(argv: string[]): string[] {
  return userInfo().uid === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
}

/** Initialises a data directory and starts postgres; resolves when it accepts connections. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-pg-'));
  if (userInfo().uid === 0) {
    const pg = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(pg.stdout.trim()), Number(gid.stdout.trim()));
  }
  const data = join(dir, 'data');
  const init = spawnSync(asPostgres([join(bin, 'initdb')])[0]!, [...asPostgres([join(bin, 'initdb')]).slice(1), '-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { encoding: 'utf8' });
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  if (options.host) {
    // Trust auth over TCP too (only from the addresses it listens on: loopback or a test namespace).
    appendFileSync(join(data, 'pg_hba.conf'), '\nhost all all 0.0.0.0/0 trust\n');
  }
  const port = options.port ?? (options.host ? 5432 : 5432 + Math.floor(Math.random() * 1000) + 20_000);
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  const launch = async () => {
    // fsync=off keeps tests fast, but synchronous_commit stays on: a commit is written to the OS
    // before it is acknowledged, so kill() (a process crash, not a machine crash) loses no
    // acknowledged commit, as with a real server. With it off, a kill lost the last ~200 ms of
    // commits, tables just created included.
    const argv = [
      ...(options.prefix ?? []),
      ...asPostgres([join(bin, 'postgres'), '-D', data, '-k', dir, '-p', String(port), '-c', `listen_addresses=${options.host ?? ''}`, '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200', '-c', 'shared_buffers=32MB']),
    ];
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 20_000) stderr += d.toString();
    });
    child = proc;
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    // The socket accepts before the server takes queries ("the database system is starting up",
    // 57P03, while it replays WAL after a kill): wait for pg_isready's "accepting connections".
    while (!(await accepts(join(dir, `.s.PGSQL.${port}`))) || !isReady(bin, dir, port)) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`postgres did not start in ${dir}: ${stderr.slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const kill = async () => {
    const proc = child as ChildProcess | null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      // Kill the postmaster itself (its pid is in the pid file) and let runuser reap it and exit.
      // Killing runuser too would orphan the dead postmaster as a zombie that init reaps late;
      // its pid, still "alive" in postmaster.pid, then makes a restart refuse to start.
      killPostmaster(data);
      const reaped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
      if (!reaped) proc.kill('SIGKILL');
    }
    await exited;
    // Its backends notice the postmaster's death and exit; wait so a restart finds the shared memory free.
    const until = Date.now() + 10_000;
    while (Date.now() < until && spawnSync('pgrep', ['-f', `postgres.*${dir}`]).status === 0) await new Promise((r) => setTimeout(r, 50));
    // Every process is gone, so the lock files are stale: remove them so a restart does not
    // refuse to start on "lock file already exists".
    rmSync(join(data, 'postmaster.pid'), { force: true });
    rmSync(join(dir, `.s.PGSQL.${port}.lock`), { force: true });
  };
  try {
    await launch();
  } catch (err) {
    await kill().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const urlFor = (database: string) =>
    options.host ? `postgres://postgres@${options.host}:${port}/${database}` : `postgres://postgres@localhost/${database}?host=${encodeURIComponent(dir)}&port=${port}`;
  return {
    dir,
    port,
    url: urlFor('postgres'),
    urlFor,
    async createDatabase(name: string) {
      const argv = asPostgres([join(bin, 'createdb'), '-h', dir, '-p', String(port), '-U', 'postgres', name]);
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`createdb ${name} failed: ${r.stderr}`);
    },
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** pg_isready exits 0 only once the server accepts queries. */
function isReady(bin: string, dir: string, port: number): boolean {
  return spawnSync(join(bin, 'pg_isready'), ['-q', '-h', dir, '-p', String(port), '-U', 'postgres', '-t', '2']).status === 0;
}

function killPostmaster(data: string): void {
  try {
    const pidFile = spawnSync('cat', [join(data, 'postmaster.pid')], { encoding: 'utf8' }).stdout.split('\n')[0];
    const pid = Number(pidFile);
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone: nothing to kill.
  }
}

function accepts(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(socket)) return resolve(false);
    const conn = connect(socket);
    const done = (ok: boolean) => {
      conn.destroy();
      resolve(ok);
    };
    conn.once('error', () => done(false));
    conn.once('connect', () => done(true));
    conn.setTimeout(1000, () => done(false));
  });
}
