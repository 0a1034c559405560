/**
 * Issue 15.7, the whole path with real short-lived invites: a volunteer connected with an
 * invite that expires is disconnected by signaling (SIG_TOKEN_EXPIRED) and dropped by the
 * ingress once the operator's grace has passed, and not reconnected; the ingress also does it
 * on its own when signaling is gone by then. Before, a connected volunteer went on serving long
 * after its invite expired.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Stream } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';
import { volunteerScope } from '../protocol/index.ts';
import { startNodeHost, type NodeHost } from './node-host.ts';
import { SECRET, startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

const GRACE_MS = 300;
const nets: NodeNetwork[] = [];
const hosts: NodeHost[] = [];
afterEach(async () => {
  for (const h of hosts.splice(0)) h.close();
  for (const n of nets.splice(0)) await n.close();
});

const answer = (s: Stream) => {
  s.onreset = () => {};
  s.respond({ status: 200, headers: [] }, true);
};

async function network(): Promise<NodeNetwork> {
  const net = await startNodeNetwork({}, { volunteers: { inviteGraceMs: GRACE_MS } });
  nets.push(net);
  return net;
}

/** A volunteer whose invite expires in about `ttlSeconds` (whole seconds: the token's granularity). */
function volunteer(net: NodeNetwork, ttlSeconds: number): { host: NodeHost; exp: number } {
  const token = mintToken(SECRET, { role: 'host', sub: 'invite-brief', ttlSeconds, scope: volunteerScope() });
  const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp * 1000;
  const host = startNodeHost({ signalUrl: net.signalUrl, token, name: 'brief', onstream: answer });
  hosts.push(host);
  return { host, exp };
}

const ID = 'vol-invite-brief-node-brief';

describe('an invite that expires while its volunteer is connected', () => {
  it('ends the volunteer\'s sessions after the grace, and it does not come back', async () => {
    const net = await network();
    const { host, exp } = volunteer(net, 2);
    await until(() => net.ingress.pool.get(ID) !== undefined, 10_000);
    const session = net.ingress.pool.get(ID)!.session;
    await until(() => net.ingress.pool.get(ID) === undefined, 10_000);
    expect(Date.now()).toBeGreaterThanOrEqual(exp + GRACE_MS);
    expect(session.isClosed).toBe(true);
    // The host hears of it when its end of the channel closes.
    await until(() => host.sessions.every((s) => s.isClosed), 5000);
    // Positive sign first: an operator host joining later is in the pool; the volunteer is not.
    await net.addHost('op', answer);
    expect(net.ingress.pool.get(ID)).toBeUndefined();
    expect(net.signaling.peers().some((p) => p.sub === 'invite-brief')).toBe(false);
  }, 20_000);

  it('is ended by the ingress on its own when signaling is gone', async () => {
    const net = await network();
    volunteer(net, 2);
    await until(() => net.ingress.pool.get(ID) !== undefined, 10_000);
    const session = net.ingress.pool.get(ID)!.session;
    await net.signaling.close();
    await until(() => session.isClosed, 10_000);
    expect(net.ingress.pool.get(ID)).toBeUndefined();
  }, 20_000);
});
