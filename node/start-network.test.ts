import { describe, expect, it } from 'vitest';
import { silentLog, startIngress, startNetwork } from './index.ts';

describe('startNetwork', () => {
  it('starts signaling and an ingress that knows it has no host yet, and closes both', async () => {
    const net = await startNetwork({ hosts: 0, ingress: { kvStore: 'none' }, log: silentLog });
    try {
      expect(net.browser).toBeNull();
      expect(net.connected).toBe(0);
      expect(net.urls.ws).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v1\/signal$/);
      // The demo app is deployed as `default` when no app is given.
      expect((await net.signal.control.manifest()).map((a) => a.name)).toEqual(['default']);
      const res = await fetch(`${net.ingress.url}/`);
      expect(res.status).toBe(503);
      expect(res.headers.get('dcdn-error')).toBe('INGRESS_NO_HOST');
      await res.arrayBuffer();
    } finally {
      await net.close();
    }
    await expect(fetch(`${net.ingress.url}/`)).rejects.toThrow();
  });
});

describe('startIngress', () => {
  it('refuses to start without a secret or a token, naming the options', async () => {
    await expect(startIngress({ signalUrl: 'ws://127.0.0.1:9/v1/signal', port: 0, log: silentLog })).rejects.toMatchObject({
      code: 'INGRESS_BAD_OPTION',
      message: expect.stringMatching(/`secret` or `token`/),
    });
  });
});
