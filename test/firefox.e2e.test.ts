/**
 * The join page in Firefox: a volunteer's browser need not be Chromium. Real Firefox (Debian's
 * firefox-esr, driven by puppeteer over WebDriver BiDi) joins from an invite and serves requests
 * through the real ingress, request bodies included.
 *
 * Firefox gathers no loopback ICE candidate on this machine (not even with its loopback prefs),
 * and the ingress here only pairs loopback candidates, so the data channel cannot form: the tab
 * tells the ingress, which falls back to the WebSocket transport at once (not at its timeout). Across a real
 * network Firefox's host, srflx and relay candidates pair as Chromium's do.
 */
import { existsSync } from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import { startNetwork, until, type Network } from './network.ts';

const FIREFOX = process.env.DCDN_FIREFOX ?? ['/usr/bin/firefox-esr', '/usr/bin/firefox'].find((p) => existsSync(p));

let net: Network;
let ingress: Ingress;
let firefox: Browser;

beforeAll(async () => {
  if (!FIREFOX) throw new Error('Firefox is not installed: this test needs it (apt-get install -y firefox-esr; .ci/run does this), or set DCDN_FIREFOX');
  net = await startNetwork();
  // A timeout far beyond the test's waits: the fallback must come from the tab saying its
  // WebRTC attempt failed, not from the ingress's timer.
  ingress = await net.addIngress({ rtcOpenTimeoutMs: 120_000 });
  firefox = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true });
}, 60_000);

afterAll(async () => {
  await firefox?.close();
  await net?.close();
});

describe('the join page in Firefox', () => {
  it('joins from an invite and serves requests, streaming request bodies through the sandbox', async () => {
    const page = await firefox.newPage();
    const errors: string[] = [];
    // Firefox's own report of the failed loopback ICE attempt (expected here, see above) is not ours.
    page.on('pageerror', (err) => void (/WebRTC: ICE failed/.test(String(err)) || errors.push(String(err))));
    const invite = mintToken(net.secret, { role: 'host', sub: 'fox', ttlSeconds: 600 });
    await page.goto(`${net.urls.http}/join?invite=${invite}&name=firefox-1`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready', { timeout: 15_000, polling: 100 });
    await page.click('#toggle');
    await until(() => ingress.pool.list().some((h) => h.name === 'firefox-1'), 30_000, 'the Firefox tab in the pool');
    expect(ingress.pool.list().find((h) => h.name === 'firefox-1')?.transport).toBe('websocket');

    const res = await fetch(`${ingress.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('dcdn-host')).toBe('firefox-1');
    expect(await res.text()).toContain('Firefox/');
    // Firefox reads a ReadableStream request body as empty: web-compat.ts gives the handler the stream.
    for (const size of [5, 300_000]) {
      const body = Buffer.alloc(size, 7);
      const echo = await fetch(`${ingress.url}/echo`, { method: 'POST', body });
      expect(echo.status).toBe(200);
      expect(Buffer.from(await echo.arrayBuffer()).equals(body)).toBe(true);
    }
    const counted = await fetch(`${ingress.url}/count`, { method: 'POST', body: Buffer.alloc(1_000_000, 1) });
    expect(await counted.text()).toBe('1000000');
    await page.waitForFunction(() => /^4 served/.test(document.getElementById('s-requests')?.textContent ?? ''), { timeout: 10_000, polling: 100 });
    expect(errors, errors.join('\n')).toEqual([]);
  }, 60_000);
});
