import type { TestProject } from 'vitest/node';
import { launchBrowser, resolveBrowser } from '../browser-host/launcher/index.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** DevTools endpoint of the one Chromium shared by every test file (see test/browser.ts). */
    browserWSEndpoint: string;
  }
}

/**
 * Launches one headless Chromium for the whole run; test files connect to it over CDP and close
 * the pages they open. Chromium is resolved like the CLI does (DCDN_BROWSER,
 * PUPPETEER_EXECUTABLE_PATH, system paths, puppeteer's cache); without one this throws
 * HOST_BROWSER_NOT_FOUND, saying how to install it.
 */
export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  let executablePath: string;
  try {
    executablePath = resolveBrowser().path;
  } catch (error) {
    const e = error as Error & { code?: string };
    e.message = `The browser end-to-end tests need Chromium. ${e.message}`;
    throw e;
  }
  const browser = await launchBrowser({
    executablePath,
    logger: {
      warn: (fields, message) => console.warn(`[chromium] ${message}`, fields),
      error: (fields, message) => console.error(`[chromium] ${message}`, fields),
    },
  });
  // Test files attach with their own connection; ours would only mirror their traffic.
  await browser.detach();
  provide('browserWSEndpoint', browser.wsEndpoint);
  return () => browser.close();
}
