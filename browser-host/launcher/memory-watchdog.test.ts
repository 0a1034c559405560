import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RendererMemoryWatchdog } from './memory-watchdog.ts';

// A fake procfs: the real one is exercised by test/sandbox-memory.e2e.test.ts.
let proc: string;
beforeEach(() => {
  proc = mkdtempSync(join(tmpdir(), 'dcdn-proc-'));
});
afterEach(() => rmSync(proc, { recursive: true, force: true }));

function fakeProcess(pid: number, options: { cmdline: string; rssAnonKb?: number; swapKb?: number; children?: Record<string, number[]> }): void {
  const dir = join(proc, String(pid));
  for (const [task, children] of Object.entries(options.children ?? { [pid]: [] })) {
    mkdirSync(join(dir, 'task', task), { recursive: true });
    writeFileSync(join(dir, 'task', task, 'children'), children.map((c) => `${c} `).join(''));
  }
  writeFileSync(join(dir, 'cmdline'), options.cmdline);
  writeFileSync(join(dir, 'status'), `Name:\tchromium\nVmRSS:\t  999999 kB\nRssAnon:\t ${options.rssAnonKb ?? 0} kB\nRssFile:\t 50000 kB\nVmSwap:\t ${options.swapKb ?? 0} kB\n`);
}

describe('RendererMemoryWatchdog', () => {
  it('kills the renderers over the limit (private memory plus swap), and nothing else', async () => {
    fakeProcess(100, { cmdline: '/usr/bin/chromium\0--headless=new\0', rssAnonKb: 900_000, children: { '100': [101], '105': [103] } });
    fakeProcess(101, { cmdline: '/usr/lib/chromium/chromium --type=zygote', rssAnonKb: 900_000, children: { '101': [102, 104, 106] } });
    fakeProcess(102, { cmdline: '/usr/lib/chromium/chromium --type=renderer --lang=en-US', rssAnonKb: 200_000 }); // over
    fakeProcess(104, { cmdline: '/usr/lib/chromium/chromium --type=renderer', rssAnonKb: 100_000 }); // under
    fakeProcess(106, { cmdline: '/usr/lib/chromium/chromium\0--type=renderer\0', rssAnonKb: 100_000, swapKb: 40_000 }); // over with swap
    fakeProcess(103, { cmdline: '/usr/lib/chromium/chromium --type=gpu-process', rssAnonKb: 900_000 }); // not a renderer
    const signals: Array<[number, string]> = [];
    const watchdog = new RendererMemoryWatchdog({ rootPid: 100, limitMb: 128, procRoot: proc, kill: (pid, signal) => signals.push([pid, signal]) });
    const kills = await watchdog.check();
    expect(kills).toEqual([
      { pid: 102, usedMb: 195, limitMb: 128 },
      { pid: 106, usedMb: 137, limitMb: 128 },
    ]);
    expect(signals).toEqual([
      [102, 'SIGKILL'],
      [106, 'SIGKILL'],
    ]);
  });

  it('ignores processes that are gone before it reads them, and one that exits before its kill', async () => {
    fakeProcess(100, { cmdline: 'chromium', children: { '100': [101, 102] } });
    fakeProcess(102, { cmdline: 'chromium --type=renderer', rssAnonKb: 500_000 });
    const watchdog = new RendererMemoryWatchdog({
      rootPid: 100,
      limitMb: 128,
      procRoot: proc,
      kill: () => {
        throw Object.assign(new Error('no such process'), { code: 'ESRCH' });
      },
    });
    expect(await watchdog.check()).toEqual([]);
  });
});
