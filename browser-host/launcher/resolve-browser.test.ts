import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveBrowser } from './resolve-browser.ts';

const HOST_BROWSER_NOT_FOUND = 'HOST_BROWSER_NOT_FOUND';

let root: string;

/** Creates an executable stand-in for a browser under the temp root. */
function fakeBrowser(relative: string, mode = 0o755): string {
  const path = join(root, relative);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, mode);
  return path;
}

function codeOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return undefined;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dcdn-resolve-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('resolveBrowser', () => {
  it('prefers the explicit path over every variable and system path', () => {
    const flag = fakeBrowser('flag/chrome');
    const env = { DCDN_BROWSER: fakeBrowser('env/chrome') };
    const result = resolveBrowser({ explicitPath: flag, env, systemPaths: [fakeBrowser('sys/chrome')], homeDir: root });
    expect(result).toEqual({ path: flag, source: 'flag' });
  });

  it('uses DCDN_BROWSER before PUPPETEER_EXECUTABLE_PATH', () => {
    const ours = fakeBrowser('ours/chrome');
    const env = { DCDN_BROWSER: ours, PUPPETEER_EXECUTABLE_PATH: fakeBrowser('pptr/chrome') };
    expect(resolveBrowser({ env, systemPaths: [], homeDir: root })).toEqual({ path: ours, source: 'env:DCDN_BROWSER' });
  });

  it('uses PUPPETEER_EXECUTABLE_PATH before the system paths', () => {
    const pptr = fakeBrowser('pptr/chrome');
    const env = { PUPPETEER_EXECUTABLE_PATH: pptr };
    const result = resolveBrowser({ env, systemPaths: [fakeBrowser('sys/chrome')], homeDir: root });
    expect(result).toEqual({ path: pptr, source: 'env:PUPPETEER_EXECUTABLE_PATH' });
  });

  it('takes the first system path that exists', () => {
    const second = fakeBrowser('usr/bin/chromium-browser');
    const result = resolveBrowser({ env: {}, systemPaths: [join(root, 'usr/bin/chromium'), second], homeDir: root });
    expect(result).toEqual({ path: second, source: 'system' });
  });

  it('skips a system path that is not executable', () => {
    fakeBrowser('usr/bin/chromium', 0o644);
    const chrome = fakeBrowser('usr/bin/google-chrome');
    const paths = [join(root, 'usr/bin/chromium'), chrome];
    expect(resolveBrowser({ env: {}, systemPaths: paths, homeDir: root }).path).toBe(chrome);
  });

  it('falls back to the newest browser in the puppeteer cache', () => {
    fakeBrowser('.cache/puppeteer/chrome/linux-99.0.4844.51/chrome-linux64/chrome');
    const newest = fakeBrowser('.cache/puppeteer/chrome/linux-131.0.6778.85/chrome-linux64/chrome');
    fakeBrowser('.cache/puppeteer/chrome/linux-131.0.6778.9/chrome-linux64/chrome');
    expect(resolveBrowser({ env: {}, systemPaths: [], homeDir: root })).toEqual({ path: newest, source: 'puppeteer-cache' });
  });

  it('reads the cache from PUPPETEER_CACHE_DIR when set', () => {
    const chrome = fakeBrowser('elsewhere/chrome/linux-120.0.1/chrome-linux64/chrome');
    const env = { PUPPETEER_CACHE_DIR: join(root, 'elsewhere') };
    expect(resolveBrowser({ env, systemPaths: [], homeDir: join(root, 'nohome') }).path).toBe(chrome);
  });

  it('throws HOST_BROWSER_NOT_FOUND with install advice when nothing is found', () => {
    let error: unknown;
    try {
      resolveBrowser({ env: {}, systemPaths: [join(root, 'nope')], homeDir: root });
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).toBe(HOST_BROWSER_NOT_FOUND);
    expect((error as Error).message).toMatch(/apt-get install -y chromium/);
    expect((error as Error).message).toMatch(/pass its path as `browserPath`/);
    expect((error as Error).message).not.toMatch(/--browser/);
    expect((error as Error).message).toMatch(/DCDN_BROWSER/);
  });

  it('throws instead of falling back when the explicit path does not exist', () => {
    const system = fakeBrowser('sys/chrome');
    const fn = () => resolveBrowser({ explicitPath: join(root, 'missing'), env: {}, systemPaths: [system], homeDir: root });
    expect(codeOf(fn)).toBe(HOST_BROWSER_NOT_FOUND);
    expect(fn).toThrow(/`browserPath` is set to .*missing/);
  });

  it('throws instead of falling back when DCDN_BROWSER points at a directory', () => {
    const dir = join(root, 'a-directory');
    mkdirSync(dir);
    const fn = () => resolveBrowser({ env: { DCDN_BROWSER: dir }, systemPaths: [fakeBrowser('sys/chrome')], homeDir: root });
    expect(codeOf(fn)).toBe(HOST_BROWSER_NOT_FOUND);
    expect(fn).toThrow(/DCDN_BROWSER is set to/);
  });

  it('ignores variables that are set but empty', () => {
    const system = fakeBrowser('sys/chrome');
    const env = { DCDN_BROWSER: '', PUPPETEER_EXECUTABLE_PATH: '' };
    expect(resolveBrowser({ env, systemPaths: [system], homeDir: root })).toEqual({ path: system, source: 'system' });
  });
});
