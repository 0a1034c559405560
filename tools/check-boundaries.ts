/**
 * The import rules between dcdn's folders (docs/architecture.md), checked over every `.ts`,
 * `.mts` and `.mjs` file: static imports, `export ... from`, `import type` and dynamic
 * `import('...')` with a literal specifier, as TypeScript's own pre-processor reads them (no
 * type check, so a run takes well under a second).
 *
 * Run as `npm run check:boundaries` (exit 1 and one line per violation), and by
 * test/boundaries.test.ts so `npm test` enforces it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** One import that breaks a rule. */
export interface Violation {
  /** The importing file, relative to the root, with `/`. */
  file: string;
  line: number;
  specifier: string;
  /** Which rule: a stable id, e.g. `protocol-pure`. */
  rule: RuleId;
  message: string;
}

export type RuleId = 'protocol-pure' | 'page-neutral' | 'data-plane-apart' | 'no-dev-code' | 'cli-bench-lazy' | 'public-face' | 'no-test-files';

/** The folders that hold code; anything else (docs/, node_modules/) is not read. */
export const CODE_FOLDERS = ['protocol', 'signaling', 'ingress', 'browser-host', 'node', 'cli', 'bench', 'test', 'tools'] as const;
type Folder = (typeof CODE_FOLDERS)[number];

/** Shipped folders: what a user of dcdn runs. They may not import dev code. */
const SHIPPED: ReadonlySet<string> = new Set(['protocol', 'signaling', 'ingress', 'browser-host', 'node', 'cli']);

/**
 * Packages that run unchanged in Node, a browser tab and a worker: all that protocol/ and the
 * tab's page code may import from outside the repository. `dcdn:` specifiers are virtual modules
 * the sandbox's esbuild plugin provides (browser-host/sandbox/build.ts).
 */
export const NEUTRAL_PACKAGES: ReadonlySet<string> = new Set(['msgpackr']);

/**
 * browser-host files that run in Node: the launcher, the page builder, the sandbox's esbuild
 * plugin and the folder's index (their public face). Every other browser-host file is page
 * code: it runs in a tab or in a sandbox worker, reaching Node only as a bundle.
 */
export function isBrowserHostNodeFile(file: string): boolean {
  return /^browser-host\/(launcher\/|build\/|sandbox\/build\.ts$|index\.ts$)/.test(file);
}

/**
 * Deep imports across folders that are allowed by name, each for a reason:
 * - files bundled into every sandbox worker take a leaf of protocol/ because its index pulls in
 *   msgpackr (7 KB -> 47 KB per worker);
 * - the flag specs `dcdn --help` loads (cli/command-flags.ts and the flag modules it spreads)
 *   take the defaults they print from leaves with no heavy imports: the indexes load fastify,
 *   werift, puppeteer, esbuild, SQLite and msgpackr, and help would take 1.2 s of CPU instead
 *   of 0.14 s (test/cli-lazy.test.ts keeps help from loading them); signaling/turn.ts, one of
 *   those leaves, takes DcdnError from protocol/errors.ts for the same reason.
 */
export const ALLOWED_DEEP_IMPORTS: ReadonlySet<string> = new Set([
  'browser-host/sandbox/messages.ts -> protocol/frames.ts',
  'browser-host/kv/namespace.ts -> protocol/kv-wire.ts',
  'browser-host/kv/answer-body.ts -> protocol/bytes.ts',
  'browser-host/sql/database.ts -> protocol/sql-wire.ts',
  'browser-host/cache/cache-storage.ts -> protocol/cache-wire.ts',
  'browser-host/sandbox/messages.ts -> protocol/cache-wire.ts',
  'browser-host/scheduled-event.ts -> protocol/scheduled-wire.ts',
  'browser-host/sandbox/worker-runtime.ts -> protocol/scheduled-wire.ts',
  'browser-host/sandbox/errors.ts -> protocol/errors.ts',
  'browser-host/sandbox/console-capture.ts -> protocol/console-log.ts',
  'cli/command-flags.ts -> browser-host/launcher/heap-limit.ts',
  'cli/command-flags.ts -> signaling/invite-grace.ts',
  'cli/command-flags.ts -> signaling/rollout.ts',
  'cli/ice-flags.ts -> ingress/offerer.ts',
  'cli/ice-flags.ts -> signaling/turn.ts',
  'cli/traffic-flags.ts -> ingress/peer-log.ts',
  'cli/traffic-flags.ts -> ingress/pool-defaults.ts',
  'cli/traffic-flags.ts -> ingress/proxy-defaults.ts',
  'cli/sql-flags.ts -> ingress/sql/limits.ts',
  'cli/traffic-flags.ts -> ingress/cache/cache-defaults.ts',
  'cli/traffic-flags.ts -> ingress/ws-defaults.ts',
  'signaling/turn.ts -> protocol/errors.ts',
]);

/** Which folders a folder may not import, and why (the message of the violation). */
const FORBIDDEN: Partial<Record<Folder, Partial<Record<Folder, RuleId>>>> = {
  signaling: { ingress: 'data-plane-apart', 'browser-host': 'data-plane-apart', node: 'no-dev-code', cli: 'no-dev-code', bench: 'no-dev-code', test: 'no-dev-code', tools: 'no-dev-code' },
  ingress: { signaling: 'data-plane-apart', 'browser-host': 'data-plane-apart', node: 'no-dev-code', cli: 'no-dev-code', bench: 'no-dev-code', test: 'no-dev-code', tools: 'no-dev-code' },
  'browser-host': { signaling: 'data-plane-apart', ingress: 'data-plane-apart', node: 'no-dev-code', cli: 'no-dev-code', bench: 'no-dev-code', test: 'no-dev-code', tools: 'no-dev-code' },
  node: { cli: 'no-dev-code', bench: 'no-dev-code', test: 'no-dev-code', tools: 'no-dev-code' },
  cli: { test: 'no-dev-code', tools: 'no-dev-code' },
  bench: { cli: 'no-dev-code', test: 'no-dev-code' },
  tools: { cli: 'no-dev-code', bench: 'no-dev-code', test: 'no-dev-code' },
};

const NODE_BUILTINS: ReadonlySet<string> = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Lists the code files under `root`'s code folders, relative, with `/`. */
export function listCodeFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const path = posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
    }
  };
  for (const folder of CODE_FOLDERS) {
    try {
      walk(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // a fixture tree may lack folders
    }
  }
  return out.sort();
}

/** The imports of one source text: specifier, line, and whether it is a dynamic `import()`. */
export function readImports(source: string): Array<{ specifier: string; line: number; dynamic: boolean }> {
  const info = ts.preProcessFile(source, true, true);
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length;
  return info.importedFiles.map((ref) => {
    // The pre-processor does not say which imports are dynamic; the text before the quote does.
    const before = source.slice(Math.max(0, ref.pos - 40), ref.pos); // `pos` is the opening quote
    return { specifier: ref.fileName, line: lineOf(ref.pos), dynamic: /\bimport\s*\(\s*$/.test(before) };
  });
}

/** Checks every code file under `root` and returns the violations, sorted by file and line. */
export function checkBoundaries(root: string): Violation[] {
  const violations: Violation[] = [];
  for (const file of listCodeFiles(root)) {
    for (const imp of readImports(readFileSync(join(root, file), 'utf8'))) {
      const v = checkImport(file, imp.specifier, imp.dynamic);
      if (v) violations.push({ file, line: imp.line, specifier: imp.specifier, ...v });
    }
  }
  return violations;
}

/** The rule one import breaks, if any. `file` is relative to the root, with `/`. */
export function checkImport(file: string, specifier: string, dynamic: boolean): { rule: RuleId; message: string } | null {
  const from = file.split('/')[0] as Folder;
  const isTest = /\.test\.ts$/.test(file) || from === 'test';
  const relativeSpec = specifier.startsWith('.');
  const target = relativeSpec ? posix.normalize(posix.join(posix.dirname(file), specifier)) : null;

  if (target !== null && /\.test\.ts$/.test(target) && !isTest) return { rule: 'no-test-files', message: 'only tests import test files' };
  // Tests (test/ and *.test.ts beside the code) may reach anything: they test internals.
  if (isTest) return null;

  if (target === null) return checkPackage(file, from, specifier);
  if (target.startsWith('../')) return { rule: 'no-dev-code', message: 'imports a file outside the repository' };
  const to = target.split('/')[0] as Folder;

  if (from === 'protocol' && to !== 'protocol') return { rule: 'protocol-pure', message: 'protocol/ imports nothing of the repository: it is the contract every part shares' };
  if (from === 'browser-host' && !isBrowserHostNodeFile(file)) {
    const ok = to === 'protocol' || (to === 'browser-host' && !isBrowserHostNodeFile(target));
    if (!ok) return { rule: 'page-neutral', message: `browser-host page code imports only protocol/ and other page code, not ${target}` };
  }
  const forbidden = FORBIDDEN[from]?.[to];
  if (from === 'cli' && to === 'bench' && !dynamic) return { rule: 'cli-bench-lazy', message: 'cli/ loads bench/ only by a dynamic import(), when `dcdn bench` runs' };
  if (forbidden) return { rule: forbidden, message: `${from}/ may not import ${to}/` };

  // Shipped code reaches another folder through its index.ts, its public face.
  if (SHIPPED.has(from) && to !== from && !/^[a-z-]+\/index\.ts$/.test(target) && !ALLOWED_DEEP_IMPORTS.has(`${file} -> ${target}`)) {
    return { rule: 'public-face', message: `import ${to}/index.ts, not ${target}` };
  }
  return null;
}

function checkPackage(file: string, from: Folder, specifier: string): { rule: RuleId; message: string } | null {
  const neutralOnly = from === 'protocol' || (from === 'browser-host' && !isBrowserHostNodeFile(file));
  if (!neutralOnly) return null;
  if (specifier.startsWith('dcdn:') && from === 'browser-host') return null;
  const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
  if (NEUTRAL_PACKAGES.has(name)) return null;
  const kind = NODE_BUILTINS.has(specifier) || NODE_BUILTINS.has(name) ? 'a Node built-in' : 'a package not known to be runtime-neutral';
  const rule: RuleId = from === 'protocol' ? 'protocol-pure' : 'page-neutral';
  return { rule, message: `${specifier} is ${kind}; ${from === 'protocol' ? 'protocol/' : 'page code'} imports only ${[...NEUTRAL_PACKAGES].join(', ')}` };
}

/** One line per violation, as `npm run check:boundaries` prints them. */
export function formatViolation(v: Violation): string {
  return `${v.file}:${v.line}: [${v.rule}] '${v.specifier}': ${v.message}`;
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] && resolve(process.argv[1]) === self) {
  const root = resolve(dirname(self), '..');
  const violations = checkBoundaries(root);
  for (const v of violations) process.stderr.write(`${formatViolation(v)}\n`);
  const files = listCodeFiles(root).length;
  process.stdout.write(violations.length === 0 ? `boundaries: ${files} files, no violations\n` : `boundaries: ${violations.length} violation(s) in ${relative(process.cwd(), root) || '.'}${sep}\n`);
  process.exitCode = violations.length === 0 ? 0 : 1;
}
