/**
 * One logger for the parts a command runs (issue 10): under `dcdn up`, signaling's own lines
 * (peers joining and leaving) are shown, which were dropped before; `--log-format json` gives
 * one JSON object per line, ready for Loki or ELK; `--log-level` filters; bad values are usage
 * errors naming the flag.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDcdn } from './cli.ts';
import { startDcdn } from './dcdn-process.ts';

const home = mkdtempSync(join(tmpdir(), 'dcdn-cli-logs-'));
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, DCDN_HOME: home };

afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('dcdn up logs', () => {
  it("shows signaling's own lines, as JSON lines with --log-format json", async () => {
    const up = startDcdn(['up', '--hosts', '0', '--port', '0', '--signal-port', '0', '--log-format', 'json'], env);
    try {
      // The hub's line for the ingress joining: logged by signaling itself, not by the CLI.
      await up.waitFor(/"msg":"peer joined"/, "signaling's peer joined line");
      await up.waitFor(/dcdn is up/, 'dcdn up printing that it is up');
      up.signalGroup('SIGTERM');
      expect((await up.exit).code).toBe(0);
      const lines = up
        .stderr()
        .split('\n')
        .filter((l) => l !== '');
      const records = lines.map((l) => JSON.parse(l) as { level: string; time: string; component: string; msg: string; role?: string });
      for (const r of records) {
        expect(typeof r.level).toBe('string');
        expect(new Date(r.time).toISOString()).toBe(r.time);
        expect(['signal', 'ingress', 'hosts', 'up', 'watch']).toContain(r.component);
      }
      expect(records).toContainEqual(expect.objectContaining({ component: 'signal', msg: 'peer joined', role: 'ingress' }));
      expect(records).toContainEqual(expect.objectContaining({ component: 'up', msg: expect.stringMatching(/^SIGTERM: shutting down/) }));
    } finally {
      await up.kill();
    }
  }, 60_000);

  it('keeps only warnings and errors at --log-level warn', async () => {
    const up = startDcdn(['up', '--hosts', '0', '--port', '0', '--signal-port', '0', '--log-level', 'warn'], env);
    try {
      await up.waitFor(/dcdn is up/, 'dcdn up printing that it is up');
      up.signalGroup('SIGTERM');
      expect((await up.exit).code).toBe(0);
      // Positive sign that the run happened and logged nothing below warn.
      expect(up.stdout()).toContain('dcdn is up');
      expect(up.stderr()).not.toMatch(/INFO/);
    } finally {
      await up.kill();
    }
  }, 60_000);

  it('refuses a bad --log-level or --log-format with a usage error', async () => {
    const level = await runDcdn(env, ['signal', '--log-level', 'loud']);
    expect(level.code).toBe(2);
    expect(level.stderr).toContain('--log-level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"');
    const format = await runDcdn(env, ['ingress', '--signal', 'http://127.0.0.1:9', '--log-format', 'xml']);
    expect(format.code).toBe(2);
    expect(format.stderr).toContain('--log-format must be pretty or json, got "xml"');
  }, 60_000);
});
