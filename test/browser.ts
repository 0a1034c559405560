import { build } from 'esbuild';
import puppeteer, { type Browser, type BrowserContext, type Page } from 'puppeteer-core';
import { inject } from 'vitest';

let connection: Promise<Browser> | null = null;
let context: Promise<BrowserContext> | null = null;

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

/**
 * A new tab in the shared browser, in this file's own browser context. Files run two at a time;
 * pages of different contexts never share a renderer process, so one file's busy tabs (a 1 GiB
 * download streams through a tab's main thread) cannot starve another file's timers.
 */
export async function newPage(): Promise<Page> {
  context ??= connectBrowser().then((browser) => browser.createBrowserContext());
  return (await context).newPage();
}

/** Closes this file's context (and any tab left in it) and drops its CDP connection. */
export async function disconnectBrowser(): Promise<void> {
  const pendingContext = context;
  context = null;
  if (pendingContext) await (await pendingContext).close().catch(() => {});
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
