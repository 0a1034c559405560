/**
 * Commands that find their control plane in `$DCDN_HOME/state.json` say so when it is stale
 * (issue 15): a `dcdn up` that is gone gives "no dcdn up is running at URL (from FILE…)", not a
 * bare ECONNREFUSED; a signaling started apart rejects the old token, and the error says where
 * that token came from and what to pass instead. A clean stop removes the state.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mintToken } from '../signaling/index.ts';
import { runDcdn } from './cli.ts';
import { startDcdn } from './dcdn-process.ts';
import { freePort } from './free-port.ts';

const home = mkdtempSync(join(tmpdir(), 'dcdn-cli-state-'));
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, DCDN_HOME: home };

afterAll(() => rmSync(home, { recursive: true, force: true }));

/** A state file as a `dcdn up` (pid `pid`) would have left it. */
function writeState(signal: string, token: string, pid: number): void {
  const state = { signal, ingress: 'http://127.0.0.1:9', operatorToken: token, baseDomain: 'localhost', pathPrefix: '/@', pid, updatedAt: '2026-01-02T03:04:05.000Z' };
  writeFileSync(join(home, 'state.json'), JSON.stringify(state));
}

/** A pid that is surely not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const r = startDcdn(['--version'], env);
  await r.exit;
  return r.child.pid!;
}

describe('stale local state', () => {
  it('names the dcdn up that is gone, where its address came from, and what to do', async () => {
    const port = await freePort();
    const pid = await deadPid();
    writeState(`http://127.0.0.1:${port}`, mintToken('old-secret-0123456789abcdef', { role: 'operator', ttlSeconds: 600 }), pid);
    const r = await runDcdn(env, ['apps']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no dcdn up is running at http://127.0.0.1:${port} (from ${join(home, 'state.json')}, written 2026-01-02T03:04:05.000Z; pid ${pid} is gone; ECONNREFUSED)`);
    expect(r.stderr).toContain('Start one with `dcdn up`, or pass --signal URL --token T');
  });

  it('explains a token the state holds that a separately started signaling refuses', async () => {
    const signal = startDcdn(['signal', '--port', '0', '--secret', 'new-secret-0123456789abcdef', '--db', ':memory:'], env);
    try {
      const url = (await signal.waitFor(/signaling listening on (http:\/\/\S+)/, 'signaling listening'))[1]!;
      writeState(url, mintToken('old-secret-0123456789abcdef', { role: 'operator', ttlSeconds: 600 }), await deadPid());
      const r = await runDcdn(env, ['apps']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('[SIG_TOKEN_INVALID] the operator token from');
      expect(r.stderr).toContain(`is not valid for ${url}`);
      expect(r.stderr).toContain('Pass --token T');
      // With a token of its own, the same command works against that signaling.
      const ok = await runDcdn({ ...env, DCDN_SECRET: 'new-secret-0123456789abcdef' }, ['apps']);
      expect(ok.code, ok.stderr).toBe(0);
    } finally {
      await signal.kill();
    }
  }, 60_000);

  it('is removed when dcdn up stops cleanly', async () => {
    const up = startDcdn(['up', '--hosts', '0', '--port', '0', '--signal-port', '0'], env);
    try {
      await up.waitFor(/dcdn is up/, 'dcdn up printing that it is up');
      expect(existsSync(join(home, 'state.json'))).toBe(true);
      up.signalGroup('SIGTERM');
      expect((await up.exit).code).toBe(0);
      expect(existsSync(join(home, 'state.json'))).toBe(false);
      const r = await runDcdn(env, ['apps']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('no control plane: run `dcdn up` here first, or pass --signal URL');
    } finally {
      await up.kill();
    }
  }, 60_000);
});
