import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { iceServerSource, turnCredentials, TURN_TTL_DEFAULT_SECONDS } from './turn.ts';

/** 2023-11-14T22:13:20Z, a fixed clock. */
const NOW_MS = 1_700_000_000_000;
const SECRET = 'north-0123456789';

describe('turnCredentials', () => {
  it('puts the expiry (now + ttl, unix seconds) and the id in the username', () => {
    const c = turnCredentials(SECRET, 'peer-1', 3600, NOW_MS);
    expect(c.username).toBe('1700003600:peer-1');
    expect(c.expiresAt).toBe(1_700_003_600);
  });

  it('signs the username with HMAC-SHA1 under the secret, base64-encoded (as coturn checks it)', () => {
    // Golden value from `printf %s 1700003600:peer-1 | openssl dgst -sha1 -hmac north-0123456789 -binary | base64`.
    expect(turnCredentials(SECRET, 'peer-1', 3600, NOW_MS).credential).toBe('xSRO4AsRHT7HtrlmB9FpUG3rMiw=');
    expect(turnCredentials(SECRET, '', 3600, NOW_MS)).toEqual({ username: '1700003600', credential: 'e8Gv9mzfDbg+xXAAou3ii9Yur1M=', expiresAt: 1_700_003_600 });
  });

  it('rounds the clock down to whole seconds', () => {
    expect(turnCredentials(SECRET, 'p', 60, NOW_MS + 999).username).toBe('1700000060:p');
  });

  it('refuses an id with the separator, an empty secret and a ttl that is not a positive whole number', () => {
    expect(() => turnCredentials(SECRET, 'a:b', 60, NOW_MS)).toThrow(/must not contain ':'/);
    expect(() => turnCredentials('', 'p', 60, NOW_MS)).toThrow(TypeError);
    expect(() => turnCredentials(SECRET, 'p', 0, NOW_MS)).toThrow(RangeError);
    expect(() => turnCredentials(SECRET, 'p', 1.5, NOW_MS)).toThrow(RangeError);
  });
});

describe('iceServerSource', () => {
  const turn = ['turn:turn.example.net:3478?transport=udp', 'turns:turn.example.net:5349'];

  it('gives each peer the STUN URLs and the TURN URLs with credentials named after it', () => {
    const source = iceServerSource({ stun: ['stun:stun.example.net'], turn, turnSecret: SECRET, turnTtlSeconds: 600, now: () => NOW_MS });
    const servers = source?.forPeer('b7c1');
    expect(servers).toEqual([
      { urls: ['stun:stun.example.net'] },
      { urls: turn, username: '1700000600:b7c1', credential: createHmac('sha1', SECRET).update('1700000600:b7c1').digest('base64') },
    ]);
    expect(source?.refreshAfterMs).toBe(300_000);
  });

  it('mints fresh credentials on every call, from the clock', () => {
    let now = NOW_MS;
    const source = iceServerSource({ turn, turnSecret: SECRET, now: () => now });
    const first = source?.forPeer('p')[0]?.username;
    now += 10_000;
    expect(first).toBe(`${1_700_000_000 + TURN_TTL_DEFAULT_SECONDS}:p`);
    expect(source?.forPeer('p')[0]?.username).toBe(`${1_700_000_010 + TURN_TTL_DEFAULT_SECONDS}:p`);
  });

  it('returns null when nothing is configured, and needs no refresh for STUN alone', () => {
    expect(iceServerSource(undefined)).toBeNull();
    expect(iceServerSource({ stun: [], turn: [] })).toBeNull();
    expect(iceServerSource({ stun: ['stun:127.0.0.1:3478'] })?.refreshAfterMs).toBeNull();
  });

  it.each([
    [{ turn }, /`turn` needs `turnSecret`/],
    [{ turnSecret: SECRET }, /`turnSecret` was given without any `turn`/],
    [{ stun: ['http://stun.example.net'] }, /`stun` "http:\/\/stun.example.net" is not a STUN URL/],
    [{ stun: ['turn:turn.example.net'] }, /is not a STUN URL/],
    [{ turn: ['stun:stun.example.net'], turnSecret: SECRET }, /is not a TURN URL/],
    [{ stun: ['stun:a.example?transport=udp'] }, /STUN URLs take no \?transport=/],
    [{ turn: ['turn:a.example:70000'], turnSecret: SECRET }, /port out of range/],
    [{ turn: ['turn:a.example?transport=sctp'], turnSecret: SECRET }, /is not a TURN URL/],
    [{ turn, turnSecret: SECRET, turnTtlSeconds: 59 }, /`turnTtlSeconds` must be a whole number of seconds >= 60/],
  ])('refuses %j with SIG_BAD_OPTION, naming the option (not a CLI flag)', (config, message) => {
    let thrown: unknown;
    try {
      iceServerSource(config);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'SIG_BAD_OPTION', message: expect.stringMatching(message) });
    expect((thrown as Error).message).not.toMatch(/--/);
  });

  it('accepts IPv6 literals and both TURN transports', () => {
    const source = iceServerSource({ stun: ['stun:[::1]:3478'], turn: ['turn:[2001:db8::1]?transport=tcp', 'turn:127.0.0.1:3478'], turnSecret: SECRET });
    expect(source?.forPeer('p').flatMap((s) => s.urls)).toEqual(['stun:[::1]:3478', 'turn:[2001:db8::1]?transport=tcp', 'turn:127.0.0.1:3478']);
  });
});
