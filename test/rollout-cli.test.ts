/**
 * `dcdn deploy` / `rollback` when a host does not switch (issue 15.12): the real CLI against a
 * real signaling server, with a host played by a SignalingClient that reports what the test says.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppStore } from '../signaling/app-store.ts';
import { SignalingClient } from '../protocol/index.ts';
import type { AppRef, AppStatus } from '../protocol/index.ts';
import { createSignalingServer, type SignalingServer } from '../signaling/server.ts';
import { mintToken } from '../signaling/token.ts';
import { runDcdn } from './cli.ts';

const secret = 'rollout-cli-secret-0123456789';
const work = mkdtempSync(join(tmpdir(), 'dcdn-rollout-cli-'));
let store: AppStore;
let server: SignalingServer;
let env: NodeJS.ProcessEnv;
let tab: SignalingClient;
/** What the fake host answers to each manifest it is sent. */
let answer: (apps: AppRef[]) => AppStatus[] = () => [];
let manifests = 0;

beforeAll(async () => {
  store = new AppStore(':memory:');
  server = createSignalingServer({ secret, apps: store });
  const base = await server.listen(0);
  env = { PATH: process.env.PATH, HOME: work, DCDN_HOME: work, DCDN_SIGNAL: base, DCDN_SECRET: secret };
  tab = new SignalingClient({ url: `${base.replace(/^http/, 'ws')}/v1/signal`, token: mintToken(secret, { role: 'host', ttlSeconds: 600 }), info: { name: 'tab-slow' }, WebSocketImpl: WebSocket as never });
  tab.onapps = (apps) => {
    manifests++;
    tab.reportStatus(answer(apps));
  };
  tab.start();
  for (const end = Date.now() + 10_000; manifests === 0; await new Promise((r) => setTimeout(r, 20))) if (Date.now() > end) throw new Error('the fake host never joined');
});

afterAll(async () => {
  tab?.close();
  await server?.close();
  store?.close();
  rmSync(work, { recursive: true, force: true });
});

const file = join(work, 'worker.js');

describe('a deploy that not every host takes', () => {
  it('waits --rollout-timeout, names the host that lags with what it serves, and exits 1', async () => {
    // v1 goes live everywhere: the host reports each deployment it is sent as serving.
    answer = (apps) => apps.map((a) => ({ name: a.name, version: a.version, state: 'serving', sha256: a.sha256 }));
    writeFileSync(file, "export default { fetch: () => new Response('v1') };\n");
    const first = await runDcdn(env, ['deploy', file, '--name', 'slow', '--skip-check'], { timeoutMs: 60_000 });
    expect(first.stdout).toContain('live on 1/1 host\n');
    expect(first.code).toBe(0);
    // v2: the host goes on serving v1 and never reports v2.
    const v1 = store.manifest().find((a) => a.name === 'slow')!;
    answer = () => [{ name: 'slow', version: 2, state: 'loading', sha256: 'ffff' }, { name: 'slow', version: 1, state: 'serving', sha256: v1.sha256 }];
    writeFileSync(file, "export default { fetch: () => new Response('v2') };\n");
    const lagging = await runDcdn(env, ['deploy', file, '--name', 'slow', '--skip-check', '--rollout-timeout', '1'], { timeoutMs: 60_000 });
    expect(lagging.stdout).toContain('deployed slow version 2');
    expect(lagging.stdout).toContain('live on 0/1 host; tab-slow still loading (serving v1)');
    expect(lagging.stderr).toContain('not every host switched within 1 s');
    expect(lagging.code).toBe(1);
  }, 90_000);

  it('stops waiting when the host reports that the version failed to load, and says so', async () => {
    const current = () => store.manifest().find((a) => a.name === 'slow')!;
    // The rollback target fails to load on the host; v2 keeps serving there.
    const v2 = current();
    answer = (apps) => {
      const target = apps.find((a) => a.name === 'slow')!;
      return target.sha256 === v2.sha256 ? [{ name: 'slow', version: 2, state: 'serving', sha256: v2.sha256 }] : [{ name: 'slow', version: target.version, state: 'failed', sha256: target.sha256 }, { name: 'slow', version: 2, state: 'serving', sha256: v2.sha256 }];
    };
    // A timeout far beyond the test's own: only the failure report can end the wait in time.
    const failed = await runDcdn(env, ['rollback', 'slow', '--rollout-timeout', '600'], { timeoutMs: 60_000 });
    expect(failed.stdout).toContain('slow is now at version 1');
    expect(failed.stdout).toContain('live on 0/1 host; tab-slow failed to load it (serving v2)');
    expect(failed.stderr).toContain('some hosts could not load it');
    expect(failed.code).toBe(1);
  }, 90_000);
});
