/**
 * Chrome's peer-connection budget, in a real tab: past its budget the tab answers offers with
 * `close` (reason `pc-budget`) and the ingress serves it over WebSocket at once; past the reload
 * mark an idle /host tab reloads itself. Small budgets through the host page's query.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { disconnectBrowser } from './browser.ts';
import { startNetwork, until, type Network } from './network.ts';

let net: Network | undefined;

afterEach(async () => {
  await net?.close();
  net = undefined;
});

afterAll(async () => {
  await disconnectBrowser();
});

describe('the tab peer-connection budget', () => {
  it('sends the third ingress to WebSocket at once when the budget is 2, and that ingress serves', async () => {
    net = await startNetwork();
    const tab = await net.addTab('budget', 'pcBudget=2');
    const ingresses = [];
    for (let i = 0; i < 3; i++) {
      // A long open timeout: only the tab's close can make the third fall back quickly.
      const ingress = await net.addIngress({ transport: 'webrtc', rtcOpenTimeoutMs: 60_000 });
      await until(() => ingress.pool.size === 1, 30_000, `ingress ${i + 1} serving the tab`);
      ingresses.push(ingress);
    }
    expect(ingresses.map((ingress) => ingress.pool.list()[0]!.transport)).toEqual(['webrtc', 'webrtc', 'websocket']);
    expect(await tab.evaluate('window.__dcdnHost.agent.peerConnectionsCreated')).toBe(2);
    const res = await fetch(`${ingresses[2]!.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('dcdn-transport')).toBe('websocket');
    await res.text();
  }, 120_000);

  it('reloads an idle /host tab once offers pass the reload mark', async () => {
    net = await startNetwork();
    const tab = await net.addTab('reloader', 'pcBudget=1&pcReload=2');
    const loads: string[] = [];
    tab.on('load', () => loads.push(tab.url()));
    for (let i = 0; i < 3; i++) await net.addIngress({ transport: 'webrtc', rtcOpenTimeoutMs: 60_000 });
    await until(() => loads.length >= 1, 30_000, 'the tab reloading');
    // Its fresh load would use up the same small budget again: end the loop here.
    await tab.close();
  }, 120_000);
});
