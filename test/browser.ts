import { build } from 'esbuild';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { inject } from 'vitest';

let connection: Promise<Browser> | null = null;

/**
 * Connects this test file to the run's shared Chromium (launched by test/global-setup.ts).
 * One connection per file, reused by {@link newPage}; call {@link disconnectBrowser} in afterAll.
 */
export function connectBrowser(): Promise<Browser> {
  connection ??= (async () => {
    const browserWSEndpoint = inject('browserWSEndpoint');
    if (!browserWSEndpoint) throw new Error('no browserWSEndpoint: is test/global-setup.ts in vitest.config.ts globalSetup?');
    return puppeteer.connect({ browserWSEndpoint, defaultViewport: null });
  })();
  return connection;
}

/** A new tab in the shared browser. The test file closes it (pages outlive a disconnect). */
export async function newPage(): Promise<Page> {
  const browser = await connectBrowser();
  return browser.newPage();
}

/** Drops this file's CDP connection; leaves the browser to global teardown. */
export async function disconnectBrowser(): Promise<void> {
  const pending = connection;
  connection = null;
  if (pending) await (await pending).disconnect();
}

/**
 * Bundles a browser-side TypeScript module with esbuild and runs it in `page` as an IIFE whose
 * exports land on `window[globalName]`. No server, no files written.
 *
 * @example
 * ```ts
 * await addBundle(page, 'browser-host/rtc-answerer.ts', 'dcdnRtc');
 * await page.evaluate(() => window.dcdnRtc.answerOffer(offer));
 * ```
 */
export async function addBundle(page: Page, entryPoint: string, globalName: string): Promise<void> {
  const result = await build({
    entryPoints: [entryPoint],
    bundle: true,
    format: 'iife',
    globalName,
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.text;
  if (code === undefined) throw new Error(`esbuild produced nothing for ${entryPoint}`);
  await page.addScriptTag({ content: code });
}
