import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DcdnError } from '../../protocol/index.ts';

/** Where the browser path came from, for the startup log. */
export type BrowserSource =
  | 'flag'
  | 'env:DCDN_BROWSER'
  | 'env:PUPPETEER_EXECUTABLE_PATH'
  | 'system'
  | 'puppeteer-cache';

/** A Chromium-family executable that exists and may be executed. */
export interface ResolvedBrowser {
  path: string;
  source: BrowserSource;
}

export interface ResolveBrowserOptions {
  /** `--browser PATH` from the command line; wins over everything and is never second-guessed. */
  explicitPath?: string;
  /** Environment to read `DCDN_BROWSER`, `PUPPETEER_EXECUTABLE_PATH`, `PUPPETEER_CACHE_DIR` from. */
  env?: NodeJS.ProcessEnv;
  /** Overrides the well-known system locations (tests). */
  systemPaths?: readonly string[];
  /** Overrides the home directory that holds `.cache/puppeteer` (tests). */
  homeDir?: string;
}

/** Debian/Ubuntu packages, Google's packages, then snap: the order a person would look. */
export const SYSTEM_BROWSER_PATHS: readonly string[] = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome-stable',
  '/usr/bin/google-chrome',
  '/snap/bin/chromium',
];

const HOW_TO_INSTALL =
  'Install one with `apt-get install -y chromium` (Debian/Ubuntu), or pass its path as `browserPath`, ' +
  'or set DCDN_BROWSER=/path/to/chrome.';

/**
 * Finds the Chromium to host tabs in. Order: `explicitPath`, `DCDN_BROWSER`,
 * `PUPPETEER_EXECUTABLE_PATH`, {@link SYSTEM_BROWSER_PATHS}, then puppeteer's download cache
 * (newest version first). A path the operator configured (flag or either variable) that is not
 * an executable file is an error: falling back silently would run a browser they did not choose.
 *
 * @throws {DcdnError} `HOST_BROWSER_NOT_FOUND`, with advice on installing one.
 * @example
 * ```ts
 * const { path, source } = resolveBrowser({ explicitPath: args.browser });
 * log.info({ path, source }, 'using browser');
 * ```
 */
export function resolveBrowser(options: ResolveBrowserOptions = {}): ResolvedBrowser {
  const env = options.env ?? process.env;
  const configured: Array<[BrowserSource, string | undefined]> = [
    ['flag', options.explicitPath],
    ['env:DCDN_BROWSER', env['DCDN_BROWSER']],
    ['env:PUPPETEER_EXECUTABLE_PATH', env['PUPPETEER_EXECUTABLE_PATH']],
  ];
  for (const [source, path] of configured) {
    if (path === undefined || path === '') continue;
    if (isExecutableFile(path)) return { path, source };
    // The option, not a CLI flag: cli/ shows `browserPath` as --browser (cli/option-flags.ts).
    const what = source === 'flag' ? '`browserPath`' : source.slice('env:'.length);
    throw new DcdnError(
      'HOST_BROWSER_NOT_FOUND',
      `${what} is set to ${path}, which is not an executable file. Fix the path or unset it. ${HOW_TO_INSTALL}`,
    );
  }

  const tried: string[] = [];
  for (const path of options.systemPaths ?? SYSTEM_BROWSER_PATHS) {
    tried.push(path);
    if (isExecutableFile(path)) return { path, source: 'system' };
  }

  const cacheDir = env['PUPPETEER_CACHE_DIR'] || join(options.homeDir ?? homedir(), '.cache', 'puppeteer');
  for (const path of puppeteerCacheCandidates(cacheDir)) {
    tried.push(path);
    if (isExecutableFile(path)) return { path, source: 'puppeteer-cache' };
  }

  throw new DcdnError('HOST_BROWSER_NOT_FOUND', `No Chromium found (tried ${tried.join(', ')}). ${HOW_TO_INSTALL}`);
}

/** `<cache>/chrome/linux-<version>/chrome-linux64/chrome`, highest version first. */
function puppeteerCacheCandidates(cacheDir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(join(cacheDir, 'chrome'));
  } catch {
    // No puppeteer cache (the usual case with a system Chromium): no candidates from it.
    return [];
  }
  return entries
    .filter((name) => /^linux(?:64)?-\d/.test(name))
    .sort((a, b) => compareVersions(versionOf(b), versionOf(a)))
    .map((name) => join(cacheDir, 'chrome', name, 'chrome-linux64', 'chrome'));
}

function versionOf(dirName: string): number[] {
  return dirName
    .slice(dirName.indexOf('-') + 1)
    .split('.')
    .map((part) => Number.parseInt(part, 10) || 0);
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    // Missing or not executable: not a candidate; the resolver goes on to the next one.
    return false;
  }
}
