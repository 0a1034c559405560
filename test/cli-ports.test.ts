/**
 * A port that is taken fails `dcdn up`, `dcdn signal` and `dcdn ingress` at once, naming the
 * part, the address and the flag, and leaves nothing of the run listening (issue 15: the ingress
 * port taken left `dcdn up` hanging with signaling still up).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDcdn } from './dcdn-process.ts';
import { freePort } from './free-port.ts';

const home = mkdtempSync(join(tmpdir(), 'dcdn-cli-ports-'));
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, DCDN_HOME: home, DCDN_SECRET: 'ports-secret-0123456789abcdef' };
let blocker: Server;
let taken: number;

/** Whether something accepts connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    // Binding tells without connecting: EADDRINUSE means someone holds it.
    s.once('error', () => resolve(true));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
  });
}

beforeAll(async () => {
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  taken = (blocker.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise((r) => blocker.close(r));
  rmSync(home, { recursive: true, force: true });
});

/** Runs a command expected to fail at startup; returns its exit code and stderr. */
async function failing(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const p = startDcdn(args, env);
  // The failure must end the process; a hang fails the test on its timeout.
  const { code } = await p.exit;
  return { code, stderr: p.stderr() };
}

describe('a taken port', () => {
  it('of the ingress stops dcdn up, with signaling closed again', async () => {
    const signalPort = await freePort();
    const r = await failing(['up', '--hosts', '0', '--port', String(taken), '--signal-port', String(signalPort)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ingress could not listen on 127.0.0.1:${taken}: address in use (EADDRINUSE)`);
    expect(r.stderr).toContain('pass --port');
    // Signaling had started first: the log says so, and the port is free again.
    expect(r.stderr).toContain('signaling listening');
    expect(await accepts(signalPort)).toBe(false);
  }, 60_000);

  it("of signaling stops dcdn up before anything else starts", async () => {
    const r = await failing(['up', '--hosts', '0', '--port', '0', '--signal-port', String(taken)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`signaling could not listen on 127.0.0.1:${taken}: address in use (EADDRINUSE)`);
    expect(r.stderr).toContain('pass --signal-port');
    expect(r.stderr).not.toContain('ingress listening');
  }, 60_000);

  it('of dcdn signal and dcdn ingress names their --port', async () => {
    const s = await failing(['signal', '--port', String(taken)]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain(`signaling could not listen on 127.0.0.1:${taken}`);
    expect(s.stderr).toContain('pass --port');
    const i = await failing(['ingress', '--signal', 'http://127.0.0.1:9', '--port', String(taken), '--kv-store', 'none']);
    expect(i.code).toBe(1);
    expect(i.stderr).toContain(`ingress could not listen on 127.0.0.1:${taken}`);
    expect(i.stderr).toContain('pass --port');
  }, 60_000);

  it('of --metrics-listen names the metrics and that flag, not --port, and stops the ingress', async () => {
    const port = await freePort();
    const i = await failing(['ingress', '--signal', 'http://127.0.0.1:9', '--port', String(port), '--kv-store', 'none', '--secret', 'ports-secret-0123456789abcdef', '--metrics-listen', `127.0.0.1:${taken}`]);
    expect(i.code).toBe(1);
    expect(i.stderr).toContain(`ingress metrics could not listen on 127.0.0.1:${taken}: address in use (EADDRINUSE)`);
    expect(i.stderr).toContain('pass --metrics-listen');
    expect(await accepts(port)).toBe(false);
  }, 60_000);

  it('an address not of this machine names --host', async () => {
    const r = await failing(['signal', '--port', '0', '--host', '192.0.2.1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('signaling could not listen on 192.0.2.1: address not available (EADDRNOTAVAIL)');
    expect(r.stderr).toContain('pass --host');
  }, 60_000);
});
