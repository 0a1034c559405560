/**
 * The Node side of browser-host: launching Chromium with host tabs (launcher/) and building the
 * pages, scripts and app bundles tabs load (build/). Other folders import this, never the page
 * code: everything else in browser-host runs in a browser tab or a sandbox worker and reaches
 * Node only as the bundles built here (test/boundaries.test.ts keeps the two apart).
 */
export {
  allowHostPattern,
  buildChromiumArgs,
  DEFAULT_HEAP_LIMIT_MB,
  isSecureOrigin,
  launchBrowser,
  resolveBrowser,
  SYSTEM_BROWSER_PATHS,
  type BrowserSource,
  type LaunchBrowserOptions,
  type LaunchedBrowser,
  type LauncherLogger,
  type OpenTabsOptions,
  type ResolveBrowserOptions,
  type ResolvedBrowser,
} from './launcher/index.ts';
export { bundleApp, bundleAppWithInputs, bundleHostScript, bundleJoinScript, DEMO_APP, hostPageHtml, joinPageHtml, type AppBundle } from './build/bundle.ts';
