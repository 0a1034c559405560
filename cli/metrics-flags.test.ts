import { describe, expect, it } from 'vitest';
import { createSignalingServer, mintToken } from '../signaling/index.ts';
import { UsageError } from './args.ts';
import { metricsOptionsFromFlags, otlpOptionsFromFlags, parseListen, timingOptionsFromFlags } from './metrics-flags.ts';
import { startIngress } from '../node/index.ts';

const SECRET = 'metrics-flags-secret-0123456789';

describe('metrics flags', () => {
  it.each([
    ['127.0.0.1:9464', { host: '127.0.0.1', port: 9464 }],
    [':9464', { host: '127.0.0.1', port: 9464 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    ['[::1]:9464', { host: '::1', port: 9464 }],
  ])('reads --metrics-listen %s', (text, want) => {
    expect(parseListen(text)).toEqual(want);
  });

  it.each(['9464', 'host:', 'a:b', '1.2.3.4:70000', '[nope]:1'])('refuses --metrics-listen %s with a usage error', (text) => {
    expect(() => parseListen(text)).toThrow(UsageError);
  });

  it('takes the token from the flag or DCDN_METRICS_TOKEN, and refuses a short one', () => {
    expect(metricsOptionsFromFlags({}, { DCDN_METRICS_TOKEN: 'x'.repeat(20) })).toEqual({ metricsToken: 'x'.repeat(20) });
    expect(metricsOptionsFromFlags({ 'metrics-token': 'y'.repeat(16) }, {})).toEqual({ metricsToken: 'y'.repeat(16) });
    expect(() => metricsOptionsFromFlags({ 'metrics-token': 'short' }, {})).toThrow(UsageError);
  });
});

describe('--otlp', () => {
  it('takes an http(s) collector URL and refuses anything else with a usage error', () => {
    expect(otlpOptionsFromFlags({})).toEqual({});
    expect(otlpOptionsFromFlags({ otlp: 'http://127.0.0.1:4318/v1/traces' })).toEqual({ otlp: { url: 'http://127.0.0.1:4318/v1/traces' } });
    expect(() => otlpOptionsFromFlags({ otlp: 'collector:4318' })).toThrow(UsageError);
    expect(() => otlpOptionsFromFlags({ otlp: 'not a url' })).toThrow(UsageError);
  });
});

describe('an ingress started from the CLI parts', () => {
  it('lets operator tokens and the fixed token read /_dcdn/metrics, and no other token', async () => {
    const signaling = createSignalingServer({ secret: SECRET });
    const base = await signaling.listen(0);
    const fixed = 'fixed-scrape-token-0123';
    const ingress = await startIngress({ secret: SECRET, signalUrl: `${base.replace(/^http/, 'ws')}/v1/signal`, port: 0, kvStore: 'none', metricsToken: fixed, metricsListen: { host: '127.0.0.1', port: 0 }, log: () => {} });
    try {
      const status = async (token: string) => (await fetch(`${ingress.url}/_dcdn/metrics`, { headers: { authorization: `Bearer ${token}` } })).status;
      expect(await status(mintToken(SECRET, { role: 'operator', ttlSeconds: 60 }))).toBe(200);
      expect(await status(fixed)).toBe(200);
      expect(await status(mintToken(SECRET, { role: 'ingress', ttlSeconds: 60 }))).toBe(401);
      expect(await status(mintToken('another-secret-0123456789', { role: 'operator', ttlSeconds: 60 }))).toBe(401);
      expect((await fetch(ingress.metricsUrl!)).status).toBe(200);
    } finally {
      await ingress.close();
      await signaling.close();
    }
  });
});

describe('--timing-sample', () => {
  it('takes a share from 0 to 1 and refuses anything else', () => {
    expect(timingOptionsFromFlags({})).toEqual({});
    expect(timingOptionsFromFlags({ 'timing-sample': '0.01' })).toEqual({ timingSampleRate: 0.01 });
    expect(timingOptionsFromFlags({ 'timing-sample': '1' })).toEqual({ timingSampleRate: 1 });
    for (const bad of ['', '2', '-0.1', 'some']) expect(() => timingOptionsFromFlags({ 'timing-sample': bad })).toThrow(UsageError);
  });
});
