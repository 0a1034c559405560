/** The machine and software a run came from, for the JSON and docs/performance.md. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { resolveBrowser } from '../browser-host/launcher/index.ts';
import { REPO_ROOT } from './children.ts';
import { WORKERD_BIN } from './servers/workerd.ts';

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  chromium: string;
  workerd: string;
  packages: Record<string, string | null>;
  date: string;
  loadAverageAtStart: number[];
}

export async function describeMachine(): Promise<Machine> {
  const run = async (file: string, args: string[]) => {
    try {
      return (await promisify(execFile)(file, args, { timeout: 10_000 })).stdout.trim();
    } catch {
      return 'unknown';
    }
  };
  let chromium = 'not found';
  try {
    chromium = await run(resolveBrowser().path, ['--version']);
  } catch {
    // reported as not found
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    chromium,
    workerd: await run(WORKERD_BIN, ['--version']),
    packages: Object.fromEntries(['werift', 'node-datachannel', 'ws', 'msgpackr', 'autocannon', 'puppeteer-core', 'workerd'].map((name) => [name, packageVersion(name)])),
    date: new Date().toISOString(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function packageVersion(name: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return null;
  }
}
