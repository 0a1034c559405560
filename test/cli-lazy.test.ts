/**
 * `dcdn --help` and `dcdn CMD --help` must answer at once (issue 10: under 300 ms), so what
 * they load is checked here rather than timed: main.ts and the flag specs it imports, and no
 * part of the network (fastify, werift, puppeteer, esbuild, SQLite, Redis, msgpack). A new
 * static import of something heavy in the help path fails this test, not a stopwatch.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

/** Loads cli/main.ts the way bin.mjs does for help and lists every module that came with it. */
const probe = `
const { createRequire } = require('node:module');
const req = createRequire(${JSON.stringify(root)} + 'cli/bin.mjs');
req('tsx/cjs/api').register();
const before = new Set(Object.keys(req.cache));
const main = req('./main.ts');
const loaded = Object.keys(req.cache).filter((k) => !before.has(k));
const argv = JSON.parse(process.argv[1]);
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = () => true;
main.main(argv).then((code) => {
  const after = Object.keys(req.cache).filter((k) => !before.has(k));
  write(JSON.stringify({ code, loaded, after }));
});
`;

async function modulesFor(argv: string[]): Promise<{ code: number; loaded: string[]; after: string[] }> {
  const { stdout } = await run(process.execPath, ['-e', probe, JSON.stringify(argv)], { cwd: root, timeout: 60_000 });
  return JSON.parse(stdout) as { code: number; loaded: string[]; after: string[] };
}

const HEAVY = /node_modules\/(fastify|@fastify|werift|puppeteer-core|esbuild|better-sqlite3|ioredis|msgpackr|pino|ws)\//;

describe('help loads no part of the network', () => {
  it.each([[['--help']], [['up', '--help']], [['ingress', '--help']], [['deploy', '-h']], [['--version']]])('dcdn %j', async (argv) => {
    const { code, loaded, after } = await modulesFor(argv);
    expect(code).toBe(0);
    // Positive sign first: the flag specs really were loaded through this path.
    expect(loaded.some((f) => f.endsWith('cli/command-flags.ts'))).toBe(true);
    expect(after.filter((f) => HEAVY.test(f))).toEqual([]);
    // Only small spec modules of our own: no package but tsx (its lexer).
    expect(after.filter((f) => f.includes('/node_modules/') && !f.includes('/node_modules/tsx/'))).toEqual([]);
    expect(after.length).toBeLessThan(25);
  });
});
