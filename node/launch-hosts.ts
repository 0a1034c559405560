/**
 * Launches headless Chromium with host tabs that join a signaling service, as `dcdn launch` and
 * `dcdn up` do.
 */
import { allowHostPattern, isSecureOrigin, launchBrowser, resolveBrowser, type LaunchedBrowser } from '../browser-host/index.ts';
import { mintToken } from '../signaling/index.ts';
import type { Log } from './log.ts';

/**
 * The host patterns Chromium may resolve for tabs joining `signalHttp`: the signaling host (its
 * page, script and WebSocket), then `extra` (names, globs, or URLs whose host is meant).
 *
 * @throws {TypeError} naming the entry of `extra` (option `allowHosts`) that is not a host.
 */
export function launchAllowHosts(signalHttp: string, extra: readonly string[] = []): string[] {
  return [...new Set([signalHttp, ...extra].flatMap((entry) => allowHostPattern(entry)))];
}

/** What {@link launchHosts} takes. */
export interface LaunchHostsOptions {
  /** Signaling's http(s) base, e.g. `http://127.0.0.1:8787`. */
  signalHttp: string;
  /** The network's secret: each tab gets a host token minted from it... */
  secret?: string;
  /** ...or this host token, shared by every tab. */
  token?: string;
  /** Tabs to open. */
  count: number;
  /** Chromium/Chrome executable; else DCDN_BROWSER, system paths, the puppeteer cache. */
  browserPath?: string;
  /** Tabs are PREFIX-1, PREFIX-2, …; default `tab`. */
  namePrefix?: string;
  /** More hosts Chromium may resolve besides loopback and the signaling host ({@link launchAllowHosts}). */
  allowHosts?: readonly string[];
  /** Heap limit per isolate in MiB (launch.ts `heapLimitMb`). */
  heapLimitMb?: number;
  /** How long one tab may take to open and join. Default 30000 ms. */
  tabTimeoutMs?: number;
  /** More host page parameters (browser-host/main.ts), e.g. `sandbox=0` for a measurement. */
  hostQuery?: string;
  log: Log;
}

/**
 * Launches Chromium with `count` host tabs and detaches puppeteer once they are up; the browser
 * keeps running until the returned handle is closed.
 *
 * @example
 * ```ts
 * const browser = await launchHosts({ signalHttp: urls.http, secret, count: 2, log: silentLog });
 * // ... later
 * await browser.close();
 * ```
 */
export async function launchHosts(opts: LaunchHostsOptions): Promise<LaunchedBrowser> {
  const browser = resolveBrowser({ explicitPath: opts.browserPath });
  const allowHosts = launchAllowHosts(opts.signalHttp, opts.allowHosts);
  // The host page needs a secure context; plain http by a name other than loopback is not one.
  const secureOrigins = isSecureOrigin(opts.signalHttp) ? [] : [new URL(opts.signalHttp).origin];
  if (secureOrigins.length > 0) {
    opts.log('warn', 'signaling is plain http on another host: tokens and app code travel unencrypted (serve it over https); treating it as a secure context', { origin: secureOrigins[0] });
  }
  opts.log('info', 'launching Chromium', { path: browser.path, found: browser.source, tabs: opts.count, resolves: ['loopback', ...allowHosts].join(',') });
  const launched = await launchBrowser({
    executablePath: browser.path,
    allowHosts,
    secureOrigins,
    ...(opts.heapLimitMb !== undefined ? { heapLimitMb: opts.heapLimitMb } : {}),
    logger: {
      warn: (fields, message) => opts.log('warn', message, fields),
      error: (fields, message) => opts.log('error', message, fields),
    },
  });
  try {
    for (let i = 1; i <= opts.count; i++) {
      const name = `${opts.namePrefix ?? 'tab'}-${i}`;
      const token = opts.token ?? mintToken(opts.secret!, { role: 'host', sub: name, ttlSeconds: 7 * 24 * 3600 });
      const url = `${opts.signalHttp}/host?name=${encodeURIComponent(name)}&token=${encodeURIComponent(token)}${opts.hostQuery ? `&${opts.hostQuery}` : ''}`;
      await launched.openTabs(url, 1, { timeoutMs: opts.tabTimeoutMs ?? 30_000 });
      opts.log('info', 'host tab up', { name });
    }
    await launched.detach();
  } catch (err) {
    await launched.close();
    throw err;
  }
  return launched;
}
