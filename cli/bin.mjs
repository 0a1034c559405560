#!/usr/bin/env node
// Runs the TypeScript CLI directly: tsx compiles on load, so there is no build step to forget.
import { createRequire } from 'node:module';

const args = process.argv.slice(2);

/**
 * Help and the version only print text. tsx's ESM loader starts a worker thread (a quarter of a
 * second on a busy machine) before the first file loads; its in-thread require hook costs next
 * to nothing. So these take the require path: main.ts and its flag specs, nothing else (see
 * test/cli-lazy.test.ts). `dcdn bench` parses its own flags in ESM, so it never takes it.
 */
const helpOnly =
  args[0] !== 'bench' && (args.length === 0 || ['help', '--version', '-V', 'version'].includes(args[0]) || args.includes('--help') || args.includes('-h'));

if (helpOnly) {
  const require = createRequire(import.meta.url);
  require('tsx/cjs/api').register();
  process.exitCode = await require('./main.ts').main(args);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('./main.ts');
  process.exitCode = await main(args);
}
