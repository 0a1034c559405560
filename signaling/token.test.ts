import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MAX_TOKEN_LENGTH, mintToken, verifyToken } from './token.ts';

const SECRET = 'test-secret-0123456789abcdef';
const NOW = 1_800_000_000;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('SignalingError');
    return (err as { code: string }).code;
  }
  throw new Error('expected a SignalingError');
}

/** Signs an arbitrary payload string, to test what happens after a valid signature. */
function signRaw(payloadJson: string): string {
  const body = `v1.${Buffer.from(payloadJson).toString('base64url')}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

describe('token', () => {
  it('round-trips role, sub, scope and times', () => {
    const token = mintToken(SECRET, { role: 'host', sub: 'tab-1', ttlSeconds: 60, scope: ['apps:hello'] }, NOW);
    expect(token).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(verifyToken(SECRET, token, ['host'], NOW + 59)).toEqual({
      role: 'host',
      sub: 'tab-1',
      scope: ['apps:hello'],
      iat: NOW,
      exp: NOW + 60,
    });
  });

  it('rejects a token signed with another secret as invalid', () => {
    const token = mintToken('another-secret-0123456789', { role: 'host', ttlSeconds: 60 }, NOW);
    expect(codeOf(() => verifyToken(SECRET, token, ['host'], NOW))).toBe('SIG_TOKEN_INVALID');
  });

  it('rejects a token whose payload was changed to another role', () => {
    const token = mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, NOW);
    const [version, , signature] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ role: 'ingress', iat: NOW, exp: NOW + 60 })).toString('base64url');
    expect(codeOf(() => verifyToken(SECRET, `${version}.${forged}.${signature}`, ['ingress'], NOW))).toBe('SIG_TOKEN_INVALID');
  });

  it('rejects a token with one flipped signature character', () => {
    const token = mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, NOW);
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    expect(codeOf(() => verifyToken(SECRET, token.slice(0, -1) + last, ['host'], NOW))).toBe('SIG_TOKEN_INVALID');
  });

  it('rejects a token at and after its expiry, but not a second before', () => {
    const token = mintToken(SECRET, { role: 'ingress', ttlSeconds: 30 }, NOW);
    expect(verifyToken(SECRET, token, ['ingress'], NOW + 29).role).toBe('ingress');
    expect(codeOf(() => verifyToken(SECRET, token, ['ingress'], NOW + 30))).toBe('SIG_TOKEN_EXPIRED');
    expect(codeOf(() => verifyToken(SECRET, token, ['ingress'], NOW + 10_000))).toBe('SIG_TOKEN_EXPIRED');
  });

  it('rejects a role that the caller does not accept with SIG_TOKEN_SCOPE', () => {
    const token = mintToken(SECRET, { role: 'operator', ttlSeconds: 60 }, NOW);
    expect(codeOf(() => verifyToken(SECRET, token, ['host', 'ingress'], NOW))).toBe('SIG_TOKEN_SCOPE');
  });

  it('checks the signature before believing the expiry', () => {
    const token = mintToken('another-secret-0123456789', { role: 'host', ttlSeconds: 1 }, NOW);
    expect(codeOf(() => verifyToken(SECRET, token, ['host'], NOW + 100))).toBe('SIG_TOKEN_INVALID');
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['an object', { role: 'host' }],
    ['an array', ['v1', 'a', 'b']],
    ['an empty string', ''],
    ['a bare word', 'token'],
    ['two parts', 'v1.abc'],
    ['four parts', 'v1.a.b.c'],
    ['another version', 'v2.eyJ9.abc'],
    ['empty parts', 'v1..'],
    ['non-base64url characters', 'v1.ab+/=.cd+/='],
    ['unicode', 'v1.\u00e9\u00e9.\u{1F600}'],
    ['an oversized string', `v1.${'a'.repeat(MAX_TOKEN_LENGTH)}.abc`],
  ])('rejects %s as SIG_TOKEN_INVALID without any other error', (_label, input) => {
    expect(codeOf(() => verifyToken(SECRET, input, ['host'], NOW))).toBe('SIG_TOKEN_INVALID');
  });

  it.each<[string, string]>([
    ['not JSON', 'not json'],
    ['a JSON array', '["host"]'],
    ['JSON null', 'null'],
    ['an unknown role', JSON.stringify({ role: 'admin', iat: NOW, exp: NOW + 60 })],
    ['a role under __proto__', `{"__proto__":{"role":"host"},"iat":${NOW},"exp":${NOW + 60}}`],
    ['a string expiry', JSON.stringify({ role: 'host', iat: NOW, exp: String(NOW + 60) })],
    ['a fractional expiry', JSON.stringify({ role: 'host', iat: NOW, exp: NOW + 0.5 })],
    ['a missing iat', JSON.stringify({ role: 'host', exp: NOW + 60 })],
    ['a numeric sub', JSON.stringify({ role: 'host', iat: NOW, exp: NOW + 60, sub: 7 })],
    ['a scope of numbers', JSON.stringify({ role: 'host', iat: NOW, exp: NOW + 60, scope: [1, 2] })],
  ])('rejects a correctly signed payload with %s as SIG_TOKEN_INVALID', (_label, payload) => {
    expect(codeOf(() => verifyToken(SECRET, signRaw(payload), ['host'], NOW))).toBe('SIG_TOKEN_INVALID');
  });

  it('ignores unknown claims instead of returning them', () => {
    const token = signRaw(JSON.stringify({ role: 'host', iat: NOW, exp: NOW + 60, admin: true }));
    expect(verifyToken(SECRET, token, ['host'], NOW)).toEqual({ role: 'host', iat: NOW, exp: NOW + 60 });
  });

  it('refuses to mint or verify with a short secret', () => {
    expect(() => mintToken('short', { role: 'host', ttlSeconds: 60 })).toThrow(TypeError);
    expect(() => verifyToken('', 'v1.a.b', ['host'])).toThrow(TypeError);
  });

  it('refuses to mint with a non-positive ttl', () => {
    expect(() => mintToken(SECRET, { role: 'host', ttlSeconds: 0 })).toThrow(RangeError);
    expect(() => mintToken(SECRET, { role: 'host', ttlSeconds: Number.NaN })).toThrow(RangeError);
  });
});
