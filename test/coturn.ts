/**
 * A real coturn (`turnserver`) on loopback for tests: TURN REST API credentials
 * (`use-auth-secret`), UDP and TCP on one free port, no TLS, and its log in a temp dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** How long coturn may take to answer its first STUN binding request. */
export const COTURN_READY_TIMEOUT_MS = 10_000;
/** How long coturn gets to exit after SIGTERM before SIGKILL. */
export const COTURN_STOP_TIMEOUT_MS = 3_000;
/** Wait between STUN binding probes while coturn starts. */
const PROBE_INTERVAL_MS = 100;

export interface Coturn {
  /** `turn:127.0.0.1:<port>?transport=udp`. */
  url: string;
  port: number;
  pid: number;
  /** Everything coturn logged so far. */
  log(): string;
  /** Polls the log until `pattern` matches; fails after `timeoutMs`. */
  waitForLog(pattern: RegExp, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
}

/** The `turnserver` binary, or an error saying how to install it. */
export function findTurnserver(): string {
  const found = spawnSync('/bin/sh', ['-c', 'command -v turnserver'], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  throw new Error('coturn is not installed: this test needs `turnserver` on PATH. Install it with `apt-get install -y coturn` (.ci/run does).');
}

/**
 * Starts coturn with `static-auth-secret=secret` on a free loopback port and waits until it
 * answers STUN. `allow-loopback-peers` is needed because every peer here is on 127.0.0.1;
 * production configs must not have it (docs/turn.md).
 */
export async function startCoturn(secret: string): Promise<Coturn> {
  const binary = findTurnserver();
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-coturn-'));
  const port = await freePort();
  const logFile = join(dir, 'turn.log');
  const config = [
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `listening-port=${port}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=dcdn.test',
    'fingerprint',
    'no-tls',
    'no-dtls',
    'no-cli',
    'no-tcp-relay',
    'no-rfc5780',
    'allow-loopback-peers',
    `userdb=${join(dir, 'turndb')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
    `log-file=${logFile}`,
    'simple-log',
    'no-stdout-log',
    // Sessions and allocations, with their usernames, are logged only in verbose mode.
    'verbose',
  ].join('\n');
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, config + '\n');
  const child = spawn(binary, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const readLog = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const cleanup = () => rmSync(dir, { recursive: true, force: true });

  try {
    await waitForStun(port, exited);
  } catch (err) {
    child.kill('SIGKILL');
    const tail = readLog().split('\n').slice(-15).join('\n');
    cleanup();
    throw new Error(`${(err as Error).message}\ncoturn stderr: ${stderr.trim()}\ncoturn log (tail):\n${tail}`);
  }
  const pid = child.pid ?? -1;
  return {
    url: `turn:127.0.0.1:${port}?transport=udp`,
    port,
    pid,
    log: readLog,
    async waitForLog(pattern, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(readLog());
        if (match) return match[0];
        if (Date.now() > end) throw new Error(`coturn never logged ${pattern} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), COTURN_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      cleanup();
    },
  };
}

/** A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (port > 0 && udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP on 127.0.0.1');
}

/** Sends STUN Binding requests (RFC 8489 section 5) until one is answered or coturn exits. */
async function waitForStun(port: number, exited: Promise<number | null>): Promise<void> {
  const socket = createSocket('udp4');
  const transaction = randomBytes(12);
  const request = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), transaction]);
  let timer: ReturnType<typeof setInterval> | undefined;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.on('message', (message) => {
        // A Binding success response (0x0101) to our transaction.
        if (message.readUInt16BE(0) === 0x0101 && message.subarray(8, 20).equals(transaction)) resolve();
      });
      socket.on('error', reject);
      void exited.then((code) => reject(new Error(`turnserver exited with code ${code} before answering STUN`)));
      deadline = setTimeout(() => reject(new Error(`coturn did not answer STUN on 127.0.0.1:${port} within ${COTURN_READY_TIMEOUT_MS} ms`)), COTURN_READY_TIMEOUT_MS);
      const probe = () => socket.send(request, port, '127.0.0.1');
      socket.bind(0, '127.0.0.1', () => {
        probe();
        timer = setInterval(probe, PROBE_INTERVAL_MS);
      });
    });
  } finally {
    clearInterval(timer);
    clearTimeout(deadline);
    socket.close();
  }
}
