/**
 * T1, WebRTC part: a real Chromium tab that joined signaling node s2 is served by an ingress on
 * s1 over a data channel (`dcdn-transport: webrtc`): offer, answer and candidates cross the bus.
 */
import type { Page } from 'puppeteer-core';
import { afterAll, expect, it } from 'vitest';
import { mintToken } from '../../signaling/index.ts';
import { disconnectBrowser, newPage } from '../browser.ts';
import { waitFor } from './cluster-api.ts';
import { httpCall } from './http-call.ts';
import { clusterScenario } from './scenario.ts';
import { SECRET } from './topology.ts';

/** Chromium loading the host page, fetching the bundle, ICE over loopback. */
const SERVED_MS = 45_000;

let page: Page | null = null;
afterAll(async () => {
  await page?.close().catch(() => undefined);
  await disconnectBrowser();
});

clusterScenario(
  'T1: a Chromium tab on s2 served by an ingress on s1 over WebRTC',
  () => ({
    signaling: [
      { nodeId: 's1', region: 'home' },
      { nodeId: 's2', region: 'home' },
    ],
    ingresses: [{ name: 'iw', region: 'home', home: 0, transport: 'webrtc' }],
    hosts: [],
    attach: 2,
    apps: { web: {} },
  }),
  (cluster) => {
    it('opens a data channel across nodes and serves over it', async () => {
      const c = cluster();
      const s2 = c.signals[1]!;
      page = await newPage();
      const token = mintToken(SECRET, { role: 'host', sub: 'cluster-tab', ttlSeconds: 3600 });
      await page.goto(`${s2.url}/host?name=cross-tab&token=${token}`);
      const iw = c.ingress('iw');
      const served = await waitFor(
        async () => {
          const r = await httpCall(`${iw.url}/@web/`);
          return r.status === 200 && r.headers['dcdn-transport'] === 'webrtc' ? r : null;
        },
        SERVED_MS,
        () => 'the tab on s2 was not served by iw (on s1) over webrtc: cross-node relay of offers, answers and candidates (deliverable 1)',
        500,
      );
      expect(served.headers['dcdn-host']).toBe('cross-tab');
      expect(served.body).toBe('cluster app');
      // It really is on s2, and iw on s1: the relay crossed nodes.
      const health = await c.health(0);
      const tab = health?.peers.find((p) => p.role === 'host' && p.info?.name === 'cross-tab');
      expect(tab?.node).toBe('s2');
      expect(health?.peers.find((p) => p.role === 'ingress')?.node).toBe('s1');
    });
  },
);
