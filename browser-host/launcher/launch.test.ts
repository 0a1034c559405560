import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import puppeteer from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowHostPattern, buildChromiumArgs, isSecureOrigin, launchBrowser, type LaunchedBrowser } from './launch.ts';
import { resolveBrowser } from './resolve-browser.ts';
import { isAlive } from '../../test/processes.ts';

// Its own Chromium, not the shared one: this file tests detach() and close() themselves.
let browser: LaunchedBrowser;
const logged: Array<{ level: string; message: string; fields: Record<string, unknown> }> = [];

function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
}

beforeAll(async () => {
  browser = await launchBrowser({
    executablePath: resolveBrowser().path,
    logger: {
      warn: (fields, message) => logged.push({ level: 'warn', message, fields }),
      error: (fields, message) => logged.push({ level: 'error', message, fields }),
    },
    killGraceMs: 2000,
  });
});

afterAll(async () => {
  await browser?.close();
});

describe('buildChromiumArgs', () => {
  const featuresOf = (args: string[], flag: string) =>
    args.filter((a) => a.startsWith(`${flag}=`)).flatMap((a) => a.slice(flag.length + 1).split(','));

  it('keeps puppeteer\'s disabled features but IsolateSandboxedIframes, and merges extra ones into one flag', () => {
    const args = buildChromiumArgs({ headless: true, userDataDir: '/tmp/p', extraArgs: ['--disable-features=Foo', '--enable-features=Bar'] });
    expect(args.filter((a) => a.startsWith('--disable-features='))).toHaveLength(1);
    expect(featuresOf(args, '--disable-features')).toEqual(expect.arrayContaining(['Translate', 'WebRtcHideLocalIpsWithMdns', 'Foo']));
    expect(featuresOf(args, '--disable-features')).not.toContain('IsolateSandboxedIframes');
    expect(featuresOf(args, '--enable-features')).toEqual(expect.arrayContaining(['PdfOopif', 'Bar']));
    expect(args).toContain('--user-data-dir=/tmp/p');
  });

  it('caps each isolate\'s heap (each app sandbox), 512 MiB unless told otherwise or given --js-flags', () => {
    const jsFlags = (opts: { heapLimitMb?: number; extraArgs?: string[] } = {}) => buildChromiumArgs({ headless: true, userDataDir: '/tmp/p', ...opts }).filter((a) => a.startsWith('--js-flags'));
    expect(jsFlags()).toEqual(['--js-flags=--max-old-space-size=512']);
    expect(jsFlags({ heapLimitMb: 2048 })).toEqual(['--js-flags=--max-old-space-size=2048']);
    expect(jsFlags({ extraArgs: ['--js-flags=--expose-gc'] })).toEqual(['--js-flags=--expose-gc']);
    expect(() => jsFlags({ heapLimitMb: 8 })).toThrow(/at least 64/);
  });

  it('lets Chromium resolve only loopback names unless told otherwise', () => {
    const rules = (allowHosts?: string[]) =>
      buildChromiumArgs({ headless: true, userDataDir: '/tmp/p', ...(allowHosts ? { allowHosts } : {}) }).find((a) =>
        a.startsWith('--host-resolver-rules='),
      );
    expect(rules()).toBe('--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE *.localhost , EXCLUDE 127.* , EXCLUDE ::1 , EXCLUDE [::1]');
    expect(rules(['signal.example.net'])).toMatch(/ , EXCLUDE signal\.example\.net$/);
    expect(rules(['*'])).toBeUndefined();
  });

  it('turns host names, addresses, globs and URLs into allowHosts patterns', () => {
    expect(allowHostPattern('Signal.Example.NET')).toEqual(['signal.example.net']);
    expect(allowHostPattern('http://vm:40201')).toEqual(['vm']);
    expect(allowHostPattern('wss://ingress.example.net/prefix')).toEqual(['ingress.example.net']);
    expect(allowHostPattern('10.0.0.5:8080')).toEqual(['10.0.0.5']);
    expect(allowHostPattern('*.example.net')).toEqual(['*.example.net']);
    expect(allowHostPattern('*')).toEqual(['*']);
    expect(allowHostPattern('http://[fd00::5]:8787')).toEqual(['fd00::5', '[fd00::5]']);
    expect(allowHostPattern('localhost.')).toEqual(['localhost.']);
    // Loopback always resolves: nothing to add.
    for (const always of ['localhost', 'http://localhost:8787', 'app.localhost', 'http://127.0.0.1:8787', '127.1.2.3', '[::1]', '::1']) {
      expect(allowHostPattern(always)).toEqual([]);
    }
    // Would break (or widen) the comma-separated rule list.
    for (const bad of ['a b', 'a,b', 'MAP * ~NOTFOUND', 'http://', '']) expect(() => allowHostPattern(bad)).toThrow(TypeError);
  });

  it('knows which origins are secure contexts without help', () => {
    for (const secure of ['https://signal.example.net', 'http://127.0.0.1:8787', 'http://localhost:8787', 'http://a.localhost', 'http://localhost.:1', 'http://[::1]:8787']) {
      expect([secure, isSecureOrigin(secure)]).toEqual([secure, true]);
    }
    for (const insecure of ['http://vm:8787', 'http://10.0.0.5:8787', 'http://signal.example.net', 'http://[fd00::5]:1']) {
      expect([insecure, isSecureOrigin(insecure)]).toEqual([insecure, false]);
    }
  });

  it('treats the given plain-http origins as secure contexts, in one flag', () => {
    const secureFlag = (secureOrigins?: string[]) =>
      buildChromiumArgs({ headless: true, userDataDir: '/tmp/p', ...(secureOrigins ? { secureOrigins } : {}) }).filter((a) => a.startsWith('--unsafely-treat-insecure-origin-as-secure'));
    expect(secureFlag()).toEqual([]);
    expect(secureFlag(['http://vm:40201', 'http://10.0.0.5:8787'])).toEqual(['--unsafely-treat-insecure-origin-as-secure=http://vm:40201,http://10.0.0.5:8787']);
    expect(() => secureFlag(['http://vm:40201/host'])).toThrow(TypeError);
    expect(() => secureFlag(['https://a,b'])).toThrow(TypeError);
  });
});

describe('launchBrowser', () => {
  it('starts Chromium with our flags and IsolateSandboxedIframes left enabled', () => {
    const args = cmdline(browser.pid ?? -1);
    for (const flag of ['--headless=new', '--no-sandbox', '--disable-quic', '--allow-loopback-in-peer-connection']) {
      expect(args).toContain(flag);
    }
    const disabled = args.filter((a) => a.startsWith('--disable-features=')).flatMap((a) => a.split('=')[1]?.split(',') ?? []);
    expect(disabled).toContain('WebRtcHideLocalIpsWithMdns');
    expect(disabled).not.toContain('IsolateSandboxedIframes');
  });

  it('opens tabs, waits until each is ready, and logs their console errors', async () => {
    const url = `data:text/html,<script>console.error('boom from the tab'); setTimeout(() => { window.__dcdnReady = true; }, 50);</script>`;
    const pages = await browser.openTabs(url, 2, { timeoutMs: 10_000 });
    expect(pages).toHaveLength(2);
    expect(await pages[0]?.evaluate(() => (window as unknown as { __dcdnReady: boolean }).__dcdnReady)).toBe(true);
    await expect.poll(() => logged.filter((l) => l.fields['text'] === 'boom from the tab').length).toBe(2);
  });

  it('still loads pages from loopback by address and as localhost', async () => {
    const server = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<script>window.__dcdnReady = true</script>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const pages = [
        ...(await browser.openTabs(`http://127.0.0.1:${port}/`, 1, { timeoutMs: 10_000 })),
        ...(await browser.openTabs(`http://localhost:${port}/`, 1, { timeoutMs: 10_000 })),
      ];
      expect(pages).toHaveLength(2);
      await Promise.all(pages.map((p) => p.close()));
    } finally {
      server.close();
    }
  });

  it('refuses to resolve any other name, even one /etc/hosts maps to loopback', async (ctx) => {
    // `vm` and the like: only names listed in allowHosts resolve (dcdn launch adds --signal's host).
    const name = readFileSync('/etc/hosts', 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim().split(/\s+/))
      .find(([address, ...names]) => address?.startsWith('127.') && names.some((n) => !n.includes('localhost')))
      ?.slice(1)
      .find((n) => !n.includes('localhost'));
    if (!name) return ctx.skip(); // no such name on this machine; test/cli-parts.e2e.test.ts covers `localhost.`
    const server = createServer((_req, res) => res.end('<script>window.__dcdnReady = true</script>'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await expect(browser.openTabs(`http://${name}:${port}/`, 1, { timeoutMs: 10_000 })).rejects.toThrow(/ERR_NAME_NOT_RESOLVED/);
    } finally {
      server.close();
    }
  });

  it('rejects and closes its tabs when a tab never becomes ready', async () => {
    const observer = await puppeteer.connect({ browserWSEndpoint: browser.wsEndpoint });
    const before = (await observer.pages()).length;
    await expect(browser.openTabs('about:blank', 2, { readyExpression: 'false', timeoutMs: 300 })).rejects.toThrow(/300 ?ms/);
    expect((await observer.pages()).length).toBe(before);
    await observer.disconnect();
  });

  it('keeps the browser running after detach() and still kills it on close()', async () => {
    const pid = browser.pid ?? -1;
    const profile = cmdline(pid).find((a) => a.startsWith('--user-data-dir='))?.slice('--user-data-dir='.length) ?? '';
    expect(existsSync(profile)).toBe(true);

    await browser.detach();
    expect(browser.attached).toBe(false);
    expect(isAlive(pid)).toBe(true);
    const other = await puppeteer.connect({ browserWSEndpoint: browser.wsEndpoint });
    expect((await other.pages()).length).toBeGreaterThan(0);
    await other.disconnect();

    await browser.close();
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(profile)).toBe(false);
  });
});
