import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSignalingServer, type SignalingServer } from './server.ts';
import { mintToken } from './token.ts';

const SECRET = 'whoami-test-secret-0123456789';
let server: SignalingServer;
let base: string;

beforeAll(async () => {
  server = createSignalingServer({ secret: SECRET });
  base = await server.listen();
});

afterAll(() => server.close());

function whoami(authorization?: string): Promise<Response> {
  return fetch(`${base}/v1/whoami`, authorization === undefined ? {} : { headers: { authorization } });
}

describe('GET /v1/whoami', () => {
  it('answers the verified claims of a token of any role, with null for absent ones', async () => {
    const now = Math.floor(Date.now() / 1000);
    const host = await whoami(`Bearer ${mintToken(SECRET, { role: 'host', sub: 'ada', ttlSeconds: 600, scope: ['default'] }, now)}`);
    expect(host.status).toBe(200);
    expect(host.headers.get('cache-control')).toBe('no-store');
    expect(await host.json()).toEqual({ role: 'host', sub: 'ada', exp: now + 600, scope: ['default'] });
    const operator = await whoami(`Bearer ${mintToken(SECRET, { role: 'operator', ttlSeconds: 60 }, now)}`);
    expect(await operator.json()).toEqual({ role: 'operator', sub: null, exp: now + 60, scope: null });
  });

  it('answers 401 SIG_TOKEN_MISSING without a token', async () => {
    const res = await whoami();
    expect(res.status).toBe(401);
    expect(res.headers.get('dcdn-error')).toBe('SIG_TOKEN_MISSING');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SIG_TOKEN_MISSING');
  });

  it('answers 401 SIG_TOKEN_INVALID for a malformed token or a foreign signature', async () => {
    for (const token of ['garbage', mintToken('another-secret-0123456789', { role: 'host', ttlSeconds: 60 })]) {
      const res = await whoami(`Bearer ${token}`);
      expect(res.status).toBe(401);
      expect(res.headers.get('dcdn-error')).toBe('SIG_TOKEN_INVALID');
    }
  });

  it('answers 401 SIG_TOKEN_EXPIRED for an expired token', async () => {
    const res = await whoami(`Bearer ${mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, Math.floor(Date.now() / 1000) - 3600)}`);
    expect(res.status).toBe(401);
    expect(res.headers.get('dcdn-error')).toBe('SIG_TOKEN_EXPIRED');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SIG_TOKEN_EXPIRED');
  });
});
