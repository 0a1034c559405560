/**
 * The operator dashboard in real Chromium, on a real network (signaling, an ingress, a host
 * tab): it shows the deployed app and a request count that rises while load runs, and refuses
 * callers without an operator token. With DCDN_DASHBOARD_SCREENSHOTS=DIR it also saves the
 * desktop and phone screenshots committed in docs/img/.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../signaling/index.ts';
import { newPage } from './browser.ts';
import { startNetwork, type Network } from './network.ts';

let net: Network;
let ingressUrl = '';

beforeAll(async () => {
  // An app that logs and sometimes throws, so the live pane has console lines to show.
  net = await startNetwork({ app: fileURLToPath(new URL('./fixtures/console-app/worker.ts', import.meta.url)) });
  const ingress = await net.addIngress({ name: 'ingress-a', metrics: { authorize: net.isOperator }, authorizeOperator: net.isOperator });
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
    /** Screenshots only: a held load lets one exception stay in view of the pane. */
    let held: Promise<void> | null = null;
    const load = (async () => {
      for (let round = 0; loading; round++) {
        if (held) await held;
        const paths = ['/?load', '/?load', '/?load', `/log?marker=dash-${round}`];
        if (round % 10 === 5) paths.push(`/throw?marker=dash-${round}`);
        await Promise.all(paths.map((p) => fetch(`${ingressUrl}${p}`).then((r) => r.text())));
      }
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
      // The handler's console lines, under their requests.
      await page.waitForFunction(() => [...document.querySelectorAll('#log div.c.log')].some((d) => /marker dash-\d+/.test(d.textContent ?? '')), { timeout: 15_000, polling: 200 });
      const dir = process.env.DCDN_DASHBOARD_SCREENSHOTS;
      if (dir) {
        // Let the charts gather a few points of the load first.
        await page.waitForFunction(() => document.querySelectorAll('#c-rps canvas').length > 0, { timeout: 10_000 });
        await new Promise((r) => setTimeout(r, 8000));
        /** Holds the load, throws once, and waits for the exception in the pane. */
        const withException = async (shot: () => Promise<unknown>) => {
          let release!: () => void;
          held = new Promise((r) => (release = r));
          await fetch(`${ingressUrl}/log?marker=shot`);
          await fetch(`${ingressUrl}/throw?marker=shot`);
          await page.waitForFunction(() => [...document.querySelectorAll('#log div.c.exception')].some((d) => (d.textContent ?? '').includes('boom shot')), { timeout: 10_000, polling: 200 });
          await shot();
          held = null;
          release();
        };
        await withException(() => page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true }));
        // A change to isMobile reloads the page: give the charts points again.
        await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
        await new Promise((r) => setTimeout(r, 10_000));
        await withException(() => page.screenshot({ path: join(dir, 'dashboard-mobile.png'), fullPage: true }));
      }
    } finally {
      loading = false;
      await load;
      await page.close();
    }
  }, 90_000);
});
