import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { DEFAULT_HEAP_LIMIT_MB } from './heap-limit.ts';
import { DEFAULT_MEMORY_CHECK_MS, RendererMemoryWatchdog } from './memory-watchdog.ts';

// heap-limit.ts holds it so that `dcdn --help` prints it without loading puppeteer.
export { DEFAULT_HEAP_LIMIT_MB };

/** Pino-compatible subset: structured fields first, message second. */
export interface LauncherLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface LaunchBrowserOptions {
  /** From `resolveBrowser()`. */
  executablePath: string;
  /** Default true (`--headless=new`). */
  headless?: boolean;
  /**
   * More Chromium flags, applied last. `--disable-features=`/`--enable-features=` entries are
   * merged into ours rather than replacing them (Chromium honours only the last of each).
   */
  extraArgs?: readonly string[];
  /**
   * Host names Chromium may resolve, as globs (`signal.example.net`, `*.example.net`), besides
   * `localhost` and loopback literals, which always work. Default none: neither Chromium's own
   * background services nor a page reach past this machine by name. A signaling server named
   * by host or by a non-loopback address must be listed here (see {@link allowHostPattern});
   * `['*']` lifts the restriction (apps that fetch the internet).
   */
  allowHosts?: readonly string[];
  /**
   * Plain-http origins (`http://signal.example.net:8787`) Chromium treats as secure contexts
   * (`--unsafely-treat-insecure-origin-as-secure`). The host page needs one (it uses
   * `crypto.randomUUID`, among others): https and loopback origins are secure already, a
   * signaling server reached over plain http by any other name is not. Default none.
   */
  secureOrigins?: readonly string[];
  /**
   * The memory limit of each renderer process, so of each app's sandbox (its own process, see
   * DCDN_ENABLED_FEATURES), in MiB: an app that allocates without bound is stopped at this size
   * instead of filling the machine. Two mechanisms: V8's `--max-old-space-size` for the
   * JavaScript heap of every isolate (ignored when `extraArgs` has `--js-flags`), and, on Linux,
   * a {@link RendererMemoryWatchdog} that kills a renderer whose private memory (array buffers,
   * typed arrays, WebAssembly memories and everything else included) goes over it.
   * Default {@link DEFAULT_HEAP_LIMIT_MB}.
   */
  heapLimitMb?: number;
  /**
   * How often the memory watchdog reads each renderer's memory, in ms: an app can overshoot
   * `heapLimitMb` by what it allocates in this time. Default {@link DEFAULT_MEMORY_CHECK_MS};
   * 0 turns the watchdog off (only the V8 heap is bounded then).
   */
  memoryCheckMs?: number;
  /** Receives page errors, console errors and crashes. Defaults to `console`. */
  logger?: LauncherLogger;
  /** How long `close()` waits after SIGTERM before SIGKILL. Default 3000 ms. */
  killGraceMs?: number;
}

export interface OpenTabsOptions {
  /** Evaluated in each page until truthy. Default `window.__dcdnReady === true`. */
  readyExpression?: string;
  /** Applies to navigation and to the ready wait, per tab. */
  timeoutMs: number;
}

/** A running Chromium with a throwaway profile. */
export interface LaunchedBrowser {
  /** DevTools endpoint; `puppeteer.connect({ browserWSEndpoint })` from any process. */
  readonly wsEndpoint: string;
  /** The browser process id, for logs. */
  readonly pid: number | undefined;
  /** The exact command line passed to Chromium (after the executable). */
  readonly args: readonly string[];
  /** Whether puppeteer is still attached (false after `detach()`). */
  readonly attached: boolean;
  /**
   * Opens `count` tabs at `url` and resolves once `readyExpression` holds in each. On any
   * failure the tabs opened so far are closed and the error is rethrown.
   */
  openTabs(url: string, count: number, options: OpenTabsOptions): Promise<Page[]>;
  /**
   * Disconnects puppeteer and leaves Chromium and its tabs running. While attached, DevTools
   * mirrors traffic to Node (WEBRTC-NOTES: -40% req/s), so hosts detach once they are up.
   * Page objects returned earlier stop working; console forwarding stops too.
   */
  detach(): Promise<void>;
  /**
   * Runs `fn` with the browser's open pages, attaching puppeteer again for the while if it was
   * detached (a shutdown reading the tabs' state, say), and detaching after.
   */
  withPages<T>(fn: (pages: Page[]) => Promise<T>): Promise<T>;
  /** Ends the browser (SIGTERM, then SIGKILL after the grace period) and removes the profile. */
  close(): Promise<void>;
}

/** Flags from WEBRTC-NOTES item 9 plus loopback WebRTC (item 5) and no mDNS masking (item 4). */
const DCDN_FLAGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-domain-reliability',
  '--allow-loopback-in-peer-connection',
];

/**
 * Features we disable. mDNS masking makes werift wait 10 s per `.local` candidate (notes item 4).
 * NetworkTimeServiceQuerying fetches clients2.google.com/time at startup even with
 * --disable-background-networking (seen in a net-log of Chromium 156).
 */
const DCDN_DISABLED_FEATURES: readonly string[] = ['WebRtcHideLocalIpsWithMdns', 'NetworkTimeServiceQuerying'];

/**
 * Features we enable. Each app's sandboxed iframe gets its own renderer process: with Chromium's
 * default per-site grouping all of a tab's sandboxes share one, and one app running out of
 * memory takes every app's sandbox down with it (measured, docs/sandbox.md).
 */
const DCDN_ENABLED_FEATURES: readonly string[] = ['IsolateSandboxedIframes:grouping/per-document'];

/**
 * Chromium 156 still looks up accounts.google.com (ListAccounts) and update.googleapis.com
 * (an update check for a built-in component) at startup despite --disable-background-networking
 * and --disable-component-update; no flag we found stops those two. Failing every name lookup
 * but localhost stops them before a DNS packet leaves. The rules are globs over the host string
 * and apply to IP literals too, so loopback literals are excluded by name; any other address
 * (say the machine's own eth0 address) fails with ERR_NAME_NOT_RESOLVED. WebRTC candidates are
 * not resolved through these rules (loopback ICE works with them in place).
 */
const ALWAYS_RESOLVABLE: readonly string[] = ['localhost', '*.localhost', '127.*', '::1', '[::1]'];

/**
 * The `allowHosts` pattern(s) for one entry: a host name, an IP address, a glob
 * (`*.example.net`, `*` for any) or a URL whose host is meant (`http://signal.example.net:8787`).
 * An IPv6 address yields both its bare and its bracketed form; loopback, which always resolves,
 * yields nothing. Throws a TypeError for anything that could not be a host (spaces, commas).
 */
export function allowHostPattern(entry: string): string[] {
  let host = entry.trim().toLowerCase();
  if (host.includes('://')) {
    try {
      host = new URL(host).hostname;
    } catch {
      throw new TypeError(`not a URL: ${JSON.stringify(entry)}`);
    }
  } else if (/^[^:]+:\d+$/.test(host)) {
    host = host.replace(/:\d+$/, ''); // name:port
  }
  if (!/^(\[[0-9a-f:.]+\]|[0-9a-z*._:-]+)$/.test(host)) throw new TypeError(`not a host name, address or glob: ${JSON.stringify(entry)}`);
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost' || bare.endsWith('.localhost') || /^127\.[0-9.]+$/.test(bare) || bare === '::1') return [];
  return bare.includes(':') ? [bare, `[${bare}]`] : [bare];
}

/**
 * Whether a page at `url` is a secure context without help: https, or http on a loopback
 * address or a `localhost` name (W3C Secure Contexts, "potentially trustworthy").
 */
export function isSecureOrigin(url: string): boolean {
  const u = new URL(url);
  if (u.protocol === 'https:' || u.protocol === 'wss:') return true;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return host === 'localhost' || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1';
}

function hostResolverRules(allowHosts: readonly string[]): string[] {
  if (allowHosts.includes('*')) return [];
  const excluded = [...ALWAYS_RESOLVABLE, ...allowHosts].map((host) => ` , EXCLUDE ${host}`).join('');
  return [`--host-resolver-rules=MAP * ~NOTFOUND${excluded}`];
}

/**
 * Puppeteer disables IsolateSandboxedIframes by default (puppeteer#10715: trouble for its own
 * frame tracking); several apps share one browser here, so we want the isolation back.
 */
const FEATURES_WE_KEEP_ENABLED: readonly string[] = ['IsolateSandboxedIframes'];

/**
 * Builds Chromium's command line. Puppeteer merges any `--disable-features=` found in `args`
 * into its own entry (which lists IsolateSandboxedIframes) and removes it from `args`, so an
 * `ignoreDefaultArgs: [entry]` can never match once we add features of our own. Instead we take
 * puppeteer's defaults, rewrite that one entry, and launch with `ignoreDefaultArgs: true`.
 */
export function buildChromiumArgs(options: {
  headless: boolean;
  userDataDir: string;
  allowHosts?: readonly string[];
  secureOrigins?: readonly string[];
  heapLimitMb?: number;
  extraArgs?: readonly string[];
}): string[] {
  const defaults = puppeteer.defaultArgs({ headless: options.headless, args: [] });
  const secure = options.secureOrigins ?? [];
  for (const origin of secure) {
    if (!/^http:\/\/[^/\s,]+$/.test(origin)) throw new TypeError(`secureOrigins takes origins such as http://host:port, got ${JSON.stringify(origin)}`);
  }
  const heapLimitMb = options.heapLimitMb ?? DEFAULT_HEAP_LIMIT_MB;
  if (!Number.isInteger(heapLimitMb) || heapLimitMb < 64) throw new TypeError(`heapLimitMb must be an integer of at least 64, got ${heapLimitMb}`);
  const ownJsFlags = (options.extraArgs ?? []).some((a) => a.startsWith('--js-flags'));
  const extra = [
    ...(ownJsFlags ? [] : [`--js-flags=--max-old-space-size=${heapLimitMb}`]),
    ...hostResolverRules(options.allowHosts ?? []),
    ...(secure.length > 0 ? [`--unsafely-treat-insecure-origin-as-secure=${secure.join(',')}`] : []),
    ...(options.extraArgs ?? []),
  ];
  const disabled = new Set<string>();
  const enabled = new Set<string>();
  const rest: string[] = [];
  for (const arg of [...defaults, ...DCDN_FLAGS, ...extra]) {
    if (arg.startsWith('--disable-features=')) {
      for (const f of arg.slice('--disable-features='.length).split(',')) if (f) disabled.add(f);
    } else if (arg.startsWith('--enable-features=')) {
      for (const f of arg.slice('--enable-features='.length).split(',')) if (f) enabled.add(f);
    } else if (arg.startsWith('-') && !arg.startsWith('--user-data-dir') && !rest.includes(arg)) {
      rest.push(arg);
    }
  }
  for (const f of DCDN_DISABLED_FEATURES) disabled.add(f);
  for (const f of DCDN_ENABLED_FEATURES) enabled.add(f);
  for (const f of FEATURES_WE_KEEP_ENABLED) disabled.delete(f);
  if (options.headless && !rest.some((a) => a.startsWith('--headless'))) rest.push('--headless=new');
  return [
    ...rest,
    `--disable-features=${[...disabled].join(',')}`,
    ...(enabled.size > 0 ? [`--enable-features=${[...enabled].join(',')}`] : []),
    `--user-data-dir=${options.userDataDir}`,
    'about:blank',
  ];
}

const consoleLogger: LauncherLogger = {
  warn: (fields, message) => console.warn(message, fields),
  error: (fields, message) => console.error(message, fields),
};

/**
 * Starts Chromium with a fresh profile in the temp dir.
 *
 * @example
 * ```ts
 * const { path } = resolveBrowser({ explicitPath: flags.browser });
 * const browser = await launchBrowser({ executablePath: path, logger: log });
 * await browser.openTabs('http://127.0.0.1:8080/host.html', 1, { timeoutMs: 10_000 });
 * await browser.detach();
 * // ... on shutdown
 * await browser.close();
 * ```
 */
export async function launchBrowser(options: LaunchBrowserOptions): Promise<LaunchedBrowser> {
  const headless = options.headless ?? true;
  const logger = options.logger ?? consoleLogger;
  const userDataDir = await mkdtemp(join(tmpdir(), 'dcdn-chromium-'));
  const args = buildChromiumArgs({
    headless,
    userDataDir,
    allowHosts: options.allowHosts ?? [],
    secureOrigins: options.secureOrigins ?? [],
    extraArgs: options.extraArgs ?? [],
    ...(options.heapLimitMb !== undefined ? { heapLimitMb: options.heapLimitMb } : {}),
  });
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      // Through a watchdog that ends Chromium when this process dies, however it dies: puppeteer
      // starts Chromium detached (its own process group, so a terminal's Ctrl-C goes to us, not
      // to it), and without the watchdog a `kill -9` of the launcher left every tab running.
      ...(WATCHDOG ? { executablePath: WATCHDOG.shell, args: [WATCHDOG.script, options.executablePath, ...args] } : { executablePath: options.executablePath, args }),
      headless,
      ignoreDefaultArgs: true,
      defaultViewport: null,
      // Signals are the command's to handle: puppeteer's own handlers kill Chromium on the first
      // Ctrl-C (and exit 130), cutting the requests a drain should let finish.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      // A wedged tab should fail a CDP call within a minute, not puppeteer's default three.
      protocolTimeout: 60_000,
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  const handle = new ChromiumHandle(browser, args, userDataDir, logger, options.killGraceMs ?? 3000);
  const checkMs = options.memoryCheckMs ?? DEFAULT_MEMORY_CHECK_MS;
  const pid = browser.process()?.pid;
  if (checkMs > 0 && pid !== undefined) {
    if (RendererMemoryWatchdog.supported) {
      const limitMb = options.heapLimitMb ?? DEFAULT_HEAP_LIMIT_MB;
      const watchdog = new RendererMemoryWatchdog({
        rootPid: pid,
        limitMb,
        intervalMs: checkMs,
        onKill: (kill) => logger.error({ ...kill }, `killed a renderer using ${kill.usedMb} MiB, over the ${kill.limitMb} MiB heap limit (an app's sandbox: its requests fail with HOST_SANDBOX_CRASHED)`),
      });
      handle.watch(watchdog);
    } else {
      logger.warn({ platform: process.platform }, 'the heap limit bounds only the JavaScript heap here: array buffers and other memory of an app are not bounded on this platform');
    }
  }
  return handle;
}

/** The parent-death watchdog (die-with-parent.sh); POSIX only, as is puppeteer's process group. */
const WATCHDOG = process.platform === 'win32' ? null : { shell: '/bin/sh', script: fileURLToPath(new URL('./die-with-parent.sh', import.meta.url)) };

class ChromiumHandle implements LaunchedBrowser {
  readonly wsEndpoint: string;
  readonly args: readonly string[];
  #browser: Browser;
  #process: ChildProcess | null;
  #userDataDir: string;
  #logger: LauncherLogger;
  #killGraceMs: number;
  #attached = true;
  #closing: Promise<void> | null = null;
  #watchdog: RendererMemoryWatchdog | null = null;

  constructor(browser: Browser, args: string[], userDataDir: string, logger: LauncherLogger, killGraceMs: number) {
    this.#browser = browser;
    this.#process = browser.process();
    this.wsEndpoint = browser.wsEndpoint();
    this.args = args;
    this.#userDataDir = userDataDir;
    this.#logger = logger;
    this.#killGraceMs = killGraceMs;
    process.once('exit', this.#onNodeExit);
  }

  // If Node exits without close() (a crash, process.exit), puppeteer kills Chromium but leaves
  // our profile directory behind; only synchronous work is possible here.
  readonly #onNodeExit = (): void => {
    if (this.#process && isRunning(this.#process)) this.#process.kill('SIGKILL');
    rmSync(this.#userDataDir, { recursive: true, force: true, maxRetries: 3 });
  };

  /** Starts `watchdog` now and stops it when the browser closes. */
  watch(watchdog: RendererMemoryWatchdog): void {
    this.#watchdog = watchdog;
    watchdog.start();
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  get attached(): boolean {
    return this.#attached && this.#browser.connected;
  }

  async openTabs(url: string, count: number, options: OpenTabsOptions): Promise<Page[]> {
    if (!this.attached) throw new Error('openTabs() needs puppeteer attached; call it before detach()');
    const readyExpression = options.readyExpression ?? 'window.__dcdnReady === true';
    const pages: Page[] = [];
    try {
      await Promise.all(
        Array.from({ length: count }, async (_, index) => {
          const page = await this.#browser.newPage();
          pages.push(page);
          this.#watch(page, index);
          await page.goto(url, { waitUntil: 'load', timeout: options.timeoutMs });
          await page.waitForFunction(readyExpression, { timeout: options.timeoutMs, polling: 25 });
        }),
      );
    } catch (error) {
      await Promise.allSettled(pages.map((page) => page.close()));
      throw error;
    }
    return pages;
  }

  #watch(page: Page, tab: number): void {
    page.on('console', (message) => {
      const type = message.type();
      // Chromium's own note when capability detection finds no WebGPU adapter: expected here.
      if (type === 'warn' && message.text() === 'No available adapters.') return;
      if (type === 'error' || type === 'warn') {
        const fields = { tab, type, text: message.text(), location: message.location() };
        this.#logger[type === 'error' ? 'error' : 'warn'](fields, 'tab console');
      }
    });
    page.on('pageerror', (error) => {
      this.#logger.error({ tab, error: error instanceof Error ? error.message : String(error) }, 'tab uncaught error');
    });
    // 'error' is puppeteer's "page crashed" (renderer gone, e.g. out of memory).
    page.on('error', (error) => {
      this.#logger.error({ tab, error: error.message }, 'tab crashed');
    });
  }

  async withPages<T>(fn: (pages: Page[]) => Promise<T>): Promise<T> {
    if (this.attached) return fn(await this.#browser.pages());
    const browser = await puppeteer.connect({ browserWSEndpoint: this.wsEndpoint, defaultViewport: null, protocolTimeout: 60_000 });
    try {
      return await fn(await browser.pages());
    } finally {
      await browser.disconnect();
    }
  }

  async detach(): Promise<void> {
    if (!this.#attached) return;
    this.#attached = false;
    await this.#browser.disconnect();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    process.off('exit', this.#onNodeExit);
    await this.#watchdog?.stop();
    const child = this.#process;
    if (this.#attached && this.#browser.connected) {
      this.#attached = false;
      // A graceful CDP close lets Chromium flush; bounded, since a wedged browser never answers.
      await withTimeout(this.#browser.close(), this.#killGraceMs).catch(() => undefined);
    }
    if (child && isRunning(child)) {
      child.kill('SIGTERM');
      if (!(await exited(child, this.#killGraceMs))) {
        child.kill('SIGKILL');
        await exited(child, this.#killGraceMs);
      }
    }
    // Chromium's helper processes may still be writing for a moment after the main one exits.
    await rm(this.#userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!isRunning(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
