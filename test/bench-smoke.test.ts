/**
 * `dcdn bench --smoke` in CI (issue 10, item 9): every section of the benchmark runs once with
 * tiny counts, so a change that breaks its code (a renamed option, a target that no longer
 * starts, a report that no longer renders) fails here instead of on the next release's run.
 * Its figures mean nothing and nothing is asserted about them: only that each section produced
 * its table and its raw figures.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDcdn } from './cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'dcdn-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// It found the intermittent 502 INGRESS_HOST_LOST on a fresh target's first 1 MiB download
// (werift's UDP sockets dropping the tab's datagrams under load, ingress/rtc-peer.test.ts).
describe('dcdn bench --smoke', () => {
  it('runs every section once and prints the same tables as a real run', async () => {
    const json = join(dir, 'smoke.json');
    // About 80 s on a quiet 2-core machine, mostly six Chromium launches; the bound is for a
    // loaded one (250 s measured at load 20). The bench stops every child it started itself,
    // also when this kills it (SIGTERM).
    const r = await runDcdn(process.env, ['bench', '--smoke', '--json', json], { timeoutMs: 420_000 });
    if (r.code !== 0) console.error(r.stderr.slice(-4000));
    expect(r.code).toBe(0);
    for (const heading of ['Channel level:', 'End to end:', 'KV latency:', 'Cost of seeing the network:', 'Latency waterfall', 'Summary against the performance targets']) expect(r.stdout).toContain(heading);
    for (const row of ['werift', 'node-datachannel', 'WebSocket', 'Chromium tab→tab', 'Node http (floor)', 'workerd', 'dcdn werift, 1 tab', 'SQLite', 'Redis']) {
      expect(r.stdout).toContain(row);
    }
    const report = JSON.parse(readFileSync(json, 'utf8')) as { mode: string; sections: string[]; summary: { waterfallUs?: Record<string, Record<string, number> | null> }; memory?: unknown; channel?: unknown; http?: unknown; kv?: unknown; observe?: unknown };
    // The waterfall's segments per transport, as docs/performance.md reads them.
    expect(Object.keys(report.summary.waterfallUs ?? {})).toEqual(['werift', 'node-datachannel', 'websocket']);
    expect(report.summary.waterfallUs?.werift).toHaveProperty('sandboxToHandler');
    expect(report.mode).toBe('smoke');
    expect(report.sections).toEqual(['channel', 'http', 'memory', 'kv', 'observe']);
    expect(report.channel).toBeDefined();
    expect(report.http).toBeDefined();
    expect(report.memory).toBeDefined();
    expect(report.kv).toBeDefined();
    expect(report.observe).toBeDefined();
  }, 480_000);

  it('refuses --quick with --smoke', async () => {
    const r = await runDcdn(process.env, ['bench', '--smoke', '--quick']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('choose one');
  });
});
