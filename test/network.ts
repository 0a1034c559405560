/**
 * A whole dcdn network for end-to-end tests: real signaling serving the real host page,
 * real ingresses, and host tabs in the run's shared Chromium.
 */
import type { Page } from 'puppeteer-core';
import { fileURLToPath } from 'node:url';
import { createIngress, type Ingress, type IngressOptions } from '../ingress/index.ts';
import { mintToken, verifyToken, type IceConfig, type SignalingServer } from '../signaling/index.ts';
import { signalUrls, startSignal } from '../node/index.ts';
import { newPage } from './browser.ts';

export const TEST_APP = fileURLToPath(new URL('./fixtures/test-app.ts', import.meta.url));
const secret = 'e2e-secret-0123456789abcdef';
const quiet = () => {};

export interface Network {
  signal: SignalingServer;
  /** The network's signing secret (tests mint tokens and drive the CLI with it). */
  secret: string;
  urls: { http: string; ws: string };
  tabs: Page[];
  ingresses: Ingress[];
  addIngress(options?: Partial<IngressOptions>): Promise<Ingress>;
  /** Accepts the network's operator tokens, as `dcdn ingress --secret` does (for `authorizeOperator`, `metrics.authorize`). */
  isOperator(token: string): boolean;
  /** Opens a host tab; `query` adds host page parameters (e.g. `wallMs=2000`). */
  addTab(name: string, query?: string): Promise<Page>;
  close(): Promise<void>;
}

export async function startNetwork(opts: { app?: string; ice?: IceConfig } = {}): Promise<Network> {
  // attach: 8 — these tests expect every ingress to serve every tab (placement puts each host
  // on min(K, ingresses) of them; the cluster suite covers K < N).
  const { server, url } = await startSignal({ secret, port: 0, host: '127.0.0.1', app: opts.app ?? TEST_APP, attach: 8, ...(opts.ice ? { ice: opts.ice } : {}), log: quiet });
  const urls = signalUrls(url);
  const tabs: Page[] = [];
  const ingresses: Ingress[] = [];
  return {
    signal: server,
    secret,
    urls,
    tabs,
    ingresses,
    async addIngress(options = {}) {
      const ingress = createIngress({
        // Ingress names are unique in a network: a second one of the same name takes the first's place.
        name: `ingress-${ingresses.length + 1}`,
        signalUrl: urls.ws,
        token: () => mintToken(secret, { role: 'ingress', ttlSeconds: 600 }),
        port: 0,
        ...options,
      });
      await ingress.listen();
      ingresses.push(ingress);
      return ingress;
    },
    isOperator(token) {
      try {
        verifyToken(secret, token, ['operator']);
        return true;
      } catch {
        return false;
      }
    },
    async addTab(name, query) {
      const page = await newPage();
      page.on('pageerror', (err) => console.error(`[${name}] ${String(err)}`));
      const token = mintToken(secret, { role: 'host', sub: name, ttlSeconds: 600 });
      await page.goto(`${urls.http}/host?name=${name}&token=${token}${query ? `&${query}` : ''}`);
      await page.waitForFunction('window.__dcdnReady === true', { timeout: 15_000, polling: 100 });
      tabs.push(page);
      return page;
    },
    async close() {
      for (const i of ingresses) await i.close();
      for (const t of tabs) if (!t.isClosed()) await t.close();
      await server.close();
    },
  };
}

/** Polls until `cond` holds, or fails after `ms`. */
export async function until(cond: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
