export { resolveBrowser, SYSTEM_BROWSER_PATHS, type BrowserSource, type ResolveBrowserOptions, type ResolvedBrowser } from './resolve-browser.ts';
export {
  allowHostPattern,
  buildChromiumArgs,
  DEFAULT_HEAP_LIMIT_MB,
  isSecureOrigin,
  launchBrowser,
  type LaunchBrowserOptions,
  type LaunchedBrowser,
  type LauncherLogger,
  type OpenTabsOptions,
} from './launch.ts';
export { DEFAULT_MEMORY_CHECK_MS, RendererMemoryWatchdog, type RendererKill, type RendererMemoryWatchdogOptions } from './memory-watchdog.ts';
