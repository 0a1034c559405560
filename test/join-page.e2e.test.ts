/**
 * The volunteer join page (`/join` on signaling) end to end: real signaling checks the invite,
 * a real Chromium tab joins when the volunteer presses Join, and a request through a real
 * ingress is answered by that tab.
 *
 * `DCDN_SCREENSHOTS=1 npx vitest run test/join-page.e2e.test.ts` also refreshes
 * docs/img/join.png and docs/img/join-mobile.png (the joined page at desktop and phone size).
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import { disconnectBrowser, newPage } from './browser.ts';
import { startNetwork, until, type Network } from './network.ts';

const IMG_DIR = fileURLToPath(new URL('../docs/img/', import.meta.url));
const VIEWPORTS = [
  { file: 'join.png', width: 1280, height: 800 },
  { file: 'join-mobile.png', width: 390, height: 844 },
] as const;

let net: Network;
let ingress: Ingress;
const pages: Page[] = [];

beforeAll(async () => {
  net = await startNetwork();
  ingress = await net.addIngress({ transport: 'webrtc' });
}, 60_000);

afterAll(async () => {
  for (const p of pages) if (!p.isClosed()) await p.close();
  await net?.close();
  await disconnectBrowser();
});

async function openJoin(invite: string, name?: string): Promise<Page> {
  const page = await newPage();
  pages.push(page);
  page.on('pageerror', (err) => console.error(`[join] ${String(err)}`));
  await page.setViewport({ width: 1280, height: 800 });
  await page.goto(`${net.urls.http}/join?invite=${encodeURIComponent(invite)}${name ? `&name=${encodeURIComponent(name)}` : ''}`);
  return page;
}

const textOf = (page: Page, selector: string) => page.$eval(selector, (el) => el.textContent ?? '');

/** Waits until an element reads `expected` (the status refreshes once a second); says what it read if not. */
async function untilText(page: Page, selector: string, expected: string, timeout = 15_000): Promise<void> {
  const end = Date.now() + timeout;
  let last = '';
  while ((last = await textOf(page, selector)) !== expected) {
    if (Date.now() > end) throw new Error(`${selector} reads ${JSON.stringify(last)}, not ${JSON.stringify(expected)}, after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Interval polling, not puppeteer's default requestAnimationFrame: a tab in the background
 * (other test files open theirs in the same browser) gets no animation frames, so a rAF-polled
 * wait would never look again. CI timed out that way with the page already in the state.
 */
function untilState(page: Page, state: string, timeout = 15_000): Promise<unknown> {
  return page.waitForFunction((s) => document.body.dataset.state === s, { timeout, polling: 100 }, state);
}

async function healthNames(): Promise<string[]> {
  const health = (await (await fetch(`${ingress.url}/_dcdn/health`)).json()) as { hosts: Array<{ name: string }> };
  return health.hosts.map((h) => h.name);
}

describe('the join page', () => {
  it('explains joining, serves requests once Join is pressed, and stops serving on Leave', async () => {
    const invite = mintToken(net.secret, { role: 'host', sub: 'ada', ttlSeconds: 3600 });
    const page = await openJoin(invite, 'volunteer-ada');
    await untilState(page, 'ready');

    const intro = await textOf(page, 'main');
    expect(intro).toContain('Sandboxed.');
    expect(intro).toContain('cannot see your cookies, passwords');
    expect(intro).toContain('CPU, memory and bandwidth');
    expect(intro).toContain('Press Leave or close this tab to stop');
    expect(await textOf(page, '#invite-text')).toMatch(/^Invite valid until .*\d{4}/);
    expect(await textOf(page, '#invite-detail')).toBe('A host link of the operator’s own: it runs every app on this network.');
    expect(await textOf(page, '#toggle')).toBe('Join');
    expect(await page.$eval('#summary', (el) => el.getAttribute('aria-live'))).toBe('polite');
    // Nothing runs until the volunteer says so.
    await new Promise((r) => setTimeout(r, 1000));
    expect(ingress.pool.size).toBe(0);

    await page.click('#toggle');
    await untilState(page, 'serving', 20_000);
    await page.waitForFunction(() => /^default v\d+$/.test(document.getElementById('s-apps')?.textContent ?? ''), { timeout: 15_000, polling: 100 });
    expect(await textOf(page, '#toggle')).toBe('Leave');
    expect(await textOf(page, '#s-connection')).toBe('Connected to signaling');
    expect(await textOf(page, '#s-ingresses')).toMatch(/^ingress [0-9a-f]{8} · webrtc/);
    expect(await textOf(page, '#s-host')).toMatch(/^volunteer-ada \(id\s[0-9a-f]{8}\)$/);
    // The id the page shows is the one `dcdn hosts list` shows (the signaling id).
    const listed = net.signal.peers().find((p) => p.role === 'host')!.id;
    expect(await textOf(page, '#s-host')).toContain(listed.slice(0, 8));
    await until(() => ingress.pool.size === 1, 15_000, 'the tab in the ingress pool');

    const res = await fetch(`${ingress.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('dcdn-host')).toBe('volunteer-ada');
    expect(await res.text()).toContain('Hello from a browser tab');
    await untilText(page, '#s-requests', '1 served · 0 in flight · 0 errors');
    expect(await textOf(page, '#s-traffic')).toMatch(/^0\sB in · [1-9]\d*\sB out$/);

    // A burst shows as a rate (from the counters' deltas, sampled once a second).
    // Watched from before the burst: on a loaded machine the rate may have decayed by the time
    // the counters are checked.
    const rateSeen = page.waitForFunction(() => /^(?!0\.0\s)[\d.]+\sreq\/s · [\d.]+\s(B|KiB)\/s$/.test(document.getElementById('s-rate')?.textContent ?? ''), { timeout: 15_000, polling: 50 });
    for (let i = 0; i < 20; i++) expect((await fetch(`${ingress.url}/`).then(async (r) => (await r.text(), r))).status).toBe(200);
    await rateSeen;
    await untilText(page, '#s-requests', '21 served · 0 in flight · 0 errors');

    await page.mouse.move(0, 0); // no hover colour on the button in the pictures
    await new Promise((r) => setTimeout(r, 300));
    for (const view of VIEWPORTS) {
      await page.setViewport({ width: view.width, height: view.height });
      // A long value must wrap, never widen the page.
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      if (process.env.DCDN_SCREENSHOTS) {
        mkdirSync(IMG_DIR, { recursive: true });
        await page.screenshot({ path: `${IMG_DIR}${view.file}`, fullPage: true });
      }
    }
    await page.setViewport({ width: 1280, height: 800 });

    await page.click('#toggle');
    await untilState(page, 'ready');
    expect(await textOf(page, '#toggle')).toBe('Join');
    expect(await textOf(page, '#s-apps')).toBe('–');
    expect(await textOf(page, '#log')).toContain('left the network');
    const left = Date.now();
    while ((await healthNames()).includes('volunteer-ada')) {
      if (Date.now() - left > 3000) throw new Error('the ingress still lists the tab 3 s after Leave');
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  it('explains an expired invite and offers no Join', async () => {
    const past = Math.floor(Date.now() / 1000) - 3 * 86_400;
    const page = await openJoin(mintToken(net.secret, { role: 'host', ttlSeconds: 60 }, past));
    await untilState(page, 'blocked');
    const text = await textOf(page, '#invite-text');
    expect(text).toMatch(/^This invite expired on .*\d{4}.*\. Ask the operator for a new link\.$/);
    expect(await page.$eval('#toggle', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
    expect(await page.$eval('#invite', (el) => (el as HTMLElement).dataset.tone)).toBe('problem');
  });

  it('explains a malformed invite and offers no Join', async () => {
    const page = await openJoin('v1.not-a-real.token');
    await untilState(page, 'blocked');
    expect(await textOf(page, '#invite-text')).toMatch(/^This invite is not valid/);
    expect(await page.$eval('#toggle', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
  });

  it('refuses a token of another role as an invite', async () => {
    const page = await openJoin(mintToken(net.secret, { role: 'ingress', ttlSeconds: 60 }));
    await untilState(page, 'blocked');
    expect(await textOf(page, '#invite-text')).toMatch(/^This link holds an ingress token, not a volunteer invite\./);
  });

  it('leaves and explains when signaling refuses the invite on a reconnect', async () => {
    const now = Math.floor(Date.now() / 1000);
    const page = await openJoin(mintToken(net.secret, { role: 'host', ttlSeconds: 5 }, now), 'volunteer-brief');
    await untilState(page, 'ready');
    await page.click('#toggle');
    await page.waitForFunction(() => document.getElementById('s-connection')?.textContent === 'Connected to signaling', { timeout: 15_000, polling: 100 });
    await new Promise((r) => setTimeout(r, (now + 5) * 1000 - Date.now() + 200)); // the invite expires while joined
    // Signaling drops every connection (as in a restart); the tab's reconnects are refused.
    for (const client of net.signal.app.websocketServer.clients) client.terminate();
    await untilState(page, 'reconnecting', 5000);
    expect(await textOf(page, '#s-connection')).toMatch(/^Reconnecting to signaling/);
    await untilState(page, 'blocked', 25_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; the page says: ${await textOf(page, '#s-connection')} | ${await textOf(page, '#log')}`);
    });
    expect(await textOf(page, '#invite-text')).toMatch(/^This invite expired on .*\. Ask the operator for a new link\.$/);
    expect(await textOf(page, '#log')).toContain('signaling no longer accepts this invite');
    expect(await page.$eval('#toggle', (el) => (el as HTMLButtonElement).disabled)).toBe(true);
  }, 60_000);
});
