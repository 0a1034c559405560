import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSignalingServer, mintToken, type SignalingServer } from '../signaling/index.ts';
import { checkInvite, describeInvite, unverifiedExpiry } from './join-invite.ts';

const SECRET = 'join-invite-test-secret-0123456789';
let server: SignalingServer;
let base: string;

beforeAll(async () => {
  server = createSignalingServer({ secret: SECRET });
  base = await server.listen();
});

afterAll(() => server.close());

const now = () => Math.floor(Date.now() / 1000);

describe('checkInvite against a real signaling server', () => {
  it('finds a host token valid, with its expiry and app scope', async () => {
    const t = now();
    const check = await checkInvite(mintToken(SECRET, { role: 'host', ttlSeconds: 600, scope: ['volunteer', 'app:shop', 'app:blog'] }, t), base);
    expect(check).toEqual({ kind: 'valid', sub: null, exp: t + 600, scope: ['volunteer', 'app:shop', 'app:blog'] });
    const view = describeInvite(check);
    expect(view.canJoin).toBe(true);
    expect(view.text).toMatch(/^Invite valid until /);
    expect(view.detail).toBe('Covers these apps: shop, blog.');
  });

  it('reads the signed expiry of an expired invite, to say when it expired', async () => {
    const issued = now() - 7200;
    const check = await checkInvite(mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, issued), base);
    expect(check).toEqual({ kind: 'expired', exp: issued + 60 });
    const view = describeInvite(check);
    expect(view.canJoin).toBe(false);
    expect(view.text).toMatch(/^This invite expired on .+\. Ask the operator for a new link\.$/);
  });

  it('calls a token with a foreign signature, garbage or unsendable characters invalid', async () => {
    expect(await checkInvite(mintToken('another-secret-0123456789', { role: 'host', ttlSeconds: 60 }), base)).toEqual({ kind: 'invalid' });
    expect(await checkInvite('v1.abc.def', base)).toEqual({ kind: 'invalid' });
    expect(await checkInvite('two words\n', base)).toEqual({ kind: 'invalid' });
    expect(describeInvite({ kind: 'invalid' }).canJoin).toBe(false);
  });

  it('refuses a token of another role and a link without an invite', async () => {
    expect(await checkInvite(mintToken(SECRET, { role: 'operator', ttlSeconds: 60 }), base)).toEqual({ kind: 'not-host', role: 'operator' });
    expect(await checkInvite(null, base)).toEqual({ kind: 'missing' });
    expect(await checkInvite('', base)).toEqual({ kind: 'missing' });
  });

  it('lets the volunteer try anyway when signaling cannot be reached', async () => {
    const check = await checkInvite('v1.abc.def', 'http://127.0.0.1:1');
    expect(check.kind).toBe('unreachable');
    expect(describeInvite(check)).toMatchObject({ canJoin: true, tone: 'warn' });
  });
});

describe('unverifiedExpiry', () => {
  it('reads exp from the payload and gives null for anything it cannot read', () => {
    expect(unverifiedExpiry(mintToken(SECRET, { role: 'host', ttlSeconds: 60 }, 1_000_000))).toBe(1_000_060);
    expect(unverifiedExpiry('v1')).toBeNull();
    expect(unverifiedExpiry('v1.%%%.x')).toBeNull();
  });
});
