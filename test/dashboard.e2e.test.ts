/**
 * The operator dashboard in real Chromium, on a real network (signaling, an ingress, a host
 * tab): it shows the deployed app and a request count that rises while load runs, and refuses
 * callers without an operator token. With DCDN_DASHBOARD_SCREENSHOTS=DIR it also saves the
 * desktop and phone screenshots committed in docs/img/.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken, verifyToken } from '../signaling/index.ts';
import { newPage } from './browser.ts';
import { startNetwork, type Network } from './network.ts';

let net: Network;
let ingressUrl = '';

beforeAll(async () => {
  net = await startNetwork();
  const operator = (t: string) => {
    try {
      verifyToken(net.secret, t, ['operator']);
      return true;
    } catch {
      return false;
    }
  };
  const ingress = await net.addIngress({ name: 'ingress-a', metrics: { authorize: operator }, authorizeOperator: operator });
  ingressUrl = ingress.url;
  await net.addTab('tab-1');
  // Served once: the tab has the app and a session with the ingress.
  for (let i = 0; i < 100 && (await fetch(`${ingressUrl}/`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
}, 60_000);
afterAll(() => net.close());

describe('/dashboard', () => {
  it('refuses a caller without an operator token', async () => {
    expect((await fetch(`${net.urls.http}/dashboard`)).status).toBe(401);
    const host = mintToken(net.secret, { role: 'host', ttlSeconds: 60 });
    expect((await fetch(`${net.urls.http}/dashboard?token=${host}`)).status).toBe(403);
    expect((await fetch(`${net.urls.http}/v1/dashboard`)).status).toBe(401);
  });

  it('shows the app, its host, and a request count that rises while load runs', async () => {
    const token = mintToken(net.secret, { role: 'operator', ttlSeconds: 600 });
    const page = await newPage();
    let loading = true;
    const load = (async () => {
      while (loading) await Promise.all(Array.from({ length: 4 }, () => fetch(`${ingressUrl}/?load`).then((r) => r.text())));
    })();
    try {
      await page.setViewport({ width: 1280, height: 900 });
      await page.goto(`${net.urls.http}/dashboard?token=${token}`);
      const count = () => page.$eval('tr[data-app="default"] td.requests', (td) => Number(td.textContent));
      await page.waitForSelector('tr[data-app="default"] td.requests', { timeout: 15_000 });
      const first = await count();
      await page.waitForFunction((n: number) => Number(document.querySelector('tr[data-app="default"] td.requests')?.textContent) > n, { timeout: 15_000, polling: 200 }, first);
      expect(await count()).toBeGreaterThan(first);
      // The host is listed with its transport, and the live pane has request lines.
      await page.waitForFunction(() => [...document.querySelectorAll('#hosts tbody td')].some((td) => td.textContent === 'tab-1'), { timeout: 15_000, polling: 200 });
      await page.waitForFunction(() => (document.querySelector('#log')?.textContent ?? '').includes('GET /?load'), { timeout: 15_000, polling: 200 });
      const dir = process.env.DCDN_DASHBOARD_SCREENSHOTS;
      if (dir) {
        // Let the charts gather a few points of the load first.
        await page.waitForFunction(() => document.querySelectorAll('#c-rps canvas').length > 0, { timeout: 10_000 });
        await new Promise((r) => setTimeout(r, 8000));
        await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
        // A change to isMobile reloads the page: give the charts points again.
        await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
        await new Promise((r) => setTimeout(r, 10_000));
        await page.screenshot({ path: join(dir, 'dashboard-mobile.png'), fullPage: true });
      }
    } finally {
      loading = false;
      await load;
      await page.close();
    }
  }, 90_000);
});
