/**
 * Signaling's /metrics: who may read it, and counts that match what happened (peers by role and
 * kind, relayed signals, refusals, rate-limit refusals), read with the strict text parser.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parsePrometheusText, sum } from '../test/prom-text.ts';
import { createSignalingServer, type SignalingServer } from './server.ts';
import { mintToken, type Role } from './token.ts';

const SECRET = 'metrics-test-secret-0123456789';
let server: SignalingServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function start(options: Parameters<typeof createSignalingServer>[0] extends infer O ? Partial<O> : never = {}): Promise<string> {
  server = createSignalingServer({ secret: SECRET, ...options });
  return server.listen(0);
}

/** Joins as `role`; resolves with the socket and the messages it receives. */
async function join(base: string, role: Role, scope?: string[]): Promise<{ ws: WebSocket; id: string; got: Array<Record<string, unknown>> }> {
  const token = mintToken(SECRET, { role, ttlSeconds: 60, ...(scope ? { scope } : {}) });
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/signal?token=${token}`);
  const got: Array<Record<string, unknown>> = [];
  ws.on('error', () => {});
  const welcome = new Promise<string>((resolve) =>
    ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as Record<string, unknown>;
      got.push(m);
      if (m.type === 'welcome') resolve(m.id as string);
    }),
  );
  await new Promise((r) => ws.once('open', r));
  ws.send(JSON.stringify({ type: 'hello', info: { name: role } }));
  return { ws, id: await welcome, got };
}

async function scrape(base: string, token = mintToken(SECRET, { role: 'operator', ttlSeconds: 60 })) {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + 5000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('signaling /metrics', () => {
  it('counts peers by role and kind, and every relayed signal exactly', async () => {
    const base = await start();
    const ingress = await join(base, 'ingress');
    const host = await join(base, 'host');
    await join(base, 'host', ['volunteer']);
    const before = await scrape(base);
    expect(sum(before, 'dcdn_signaling_peers', { role: 'host', kind: 'operator' })).toBe(1);
    expect(sum(before, 'dcdn_signaling_peers', { role: 'host', kind: 'volunteer' })).toBe(1);
    expect(sum(before, 'dcdn_signaling_peers', { role: 'ingress', kind: 'operator' })).toBe(1);
    const N = 5;
    for (let i = 0; i < N; i++) ingress.ws.send(JSON.stringify({ type: 'signal', to: host.id, data: { kind: 'test', i } }));
    await until(() => host.got.filter((m) => m.type === 'signal').length === N);
    const after = await scrape(base);
    expect(sum(after, 'dcdn_signaling_relayed_messages_total') - sum(before, 'dcdn_signaling_relayed_messages_total')).toBe(N);
    expect(after.get('dcdn_process_cpu_seconds_total')?.type).toBe('counter');
  });

  it('counts rate-limit refusals', async () => {
    const base = await start({ rateLimit: { perSecond: 1, burst: 3 } });
    const ingress = await join(base, 'ingress');
    for (let i = 0; i < 10; i++) ingress.ws.send(JSON.stringify({ type: 'signal', to: 'nobody', data: {} }));
    await until(() => ingress.got.some((m) => m.code === 'SIG_RATE_LIMITED'));
    const m = await scrape(base);
    expect(sum(m, 'dcdn_rate_limited_total', { limit: 'messages' })).toBe(1);
    expect(sum(m, 'dcdn_signaling_refusals_total', { code: 'SIG_RATE_LIMITED' })).toBe(1);
  });

  it('takes operator tokens and the fixed metrics token, and refuses the rest with a code', async () => {
    const base = await start({ metrics: { token: 'fixed-metrics-token' } });
    await scrape(base, 'fixed-metrics-token');
    const cases: Array<[Record<string, string>, number, string]> = [
      [{}, 401, 'SIG_TOKEN_MISSING'],
      [{ authorization: 'Bearer nope' }, 401, 'SIG_TOKEN_INVALID'],
      [{ authorization: `Bearer ${mintToken(SECRET, { role: 'host', ttlSeconds: 60 })}` }, 403, 'SIG_TOKEN_SCOPE'],
    ];
    for (const [headers, status, code] of cases) {
      const res = await fetch(`${base}/metrics`, { headers });
      expect(res.status).toBe(status);
      expect(res.headers.get('dcdn-error')).toBe(code);
    }
  });
});
