/**
 * Issue 15.6: a volunteer cannot take an operator host's identity, and a ban lands on the
 * identity that misbehaved. A volunteer whose tab claims the operator tab's id (and the name
 * `tab-1`) is listed as `vol-<invite>-<id>` / `vol-tab-1`; banning it stores that id, and the
 * operator's tab with the real id still joins afterwards, also after a restart of signaling on
 * the same ban database. The public `/v1/health` hands out no host id, name or subject (an
 * operator token sees them).
 *
 * Before: the volunteer was listed with the operator's id, the ban was stored on it, and the
 * operator's tab was refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BanList } from './bans.ts';
import type { ServerMessage } from '../protocol/index.ts';
import { createSignalingServer, type SignalingServer } from './server.ts';
import { mintToken } from './token.ts';
import { volunteerScope } from '../protocol/index.ts';

const SECRET = 'identity-test-secret-0123456789';
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function start(bans: BanList): Promise<{ server: SignalingServer; http: string; ws: string }> {
  const server = createSignalingServer({ secret: SECRET, bans });
  const http = await server.listen(0);
  cleanup.push(() => server.close());
  return { server, http, ws: http.replace(/^http/, 'ws') + '/v1/signal' };
}

/** Says hello with `info`; resolves with the first message (welcome or error) and the socket. */
function hello(url: string, token: string, info: Record<string, unknown>): Promise<{ first: ServerMessage; socket: WebSocket }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
    cleanup.push(() => socket.terminate());
    socket.once('open', () => socket.send(JSON.stringify({ type: 'hello', info })));
    socket.once('message', (data) => resolve({ first: JSON.parse(String(data)) as ServerMessage, socket }));
    socket.once('error', reject);
  });
}

const operator = () => ({ authorization: `Bearer ${mintToken(SECRET, { role: 'operator', ttlSeconds: 60 })}`, 'content-type': 'application/json' });
const operatorHost = () => mintToken(SECRET, { role: 'host', sub: 'launcher', ttlSeconds: 60 });
const invite = () => mintToken(SECRET, { role: 'host', sub: 'invite-abc123', ttlSeconds: 60, scope: volunteerScope() });

describe('volunteer identities', () => {
  it('are namespaced by the invite, so banning an impostor does not ban the operator tab', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcdn-bans-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const bans = new BanList(join(dir, 'bans.db'));
    cleanup.push(() => bans.close());
    const { http, ws } = await start(bans);

    const op = await hello(ws, operatorHost(), { hostId: 'tab-op-1', name: 'tab-1' });
    expect(op.first.type).toBe('welcome');
    const imp = await hello(ws, invite(), { hostId: 'tab-op-1', name: 'tab-1' });
    expect(imp.first.type).toBe('welcome');

    const { hosts } = (await (await fetch(`${http}/v1/hosts`, { headers: operator() })).json()) as { hosts: Array<{ id: string; hostId: string; name: string; volunteer: boolean }> };
    const volunteer = hosts.find((h) => h.volunteer)!;
    expect(volunteer).toMatchObject({ hostId: 'vol-invite-abc123-tab-op-1', name: 'vol-tab-1' });
    expect(hosts.find((h) => !h.volunteer)).toMatchObject({ hostId: 'tab-op-1', name: 'tab-1' });

    // The public health endpoint names no host.
    const health = await (await fetch(`${http}/v1/health`)).text();
    expect(health).not.toContain('tab-op-1');
    expect(health).not.toContain('invite-abc123');
    expect(JSON.parse(health)).toMatchObject({ hosts: 2 });
    // Operators see the details there (dcdn tail finds the ingresses that way); a host's own token does not.
    expect(await (await fetch(`${http}/v1/health`, { headers: operator() })).text()).toContain('tab-op-1');
    expect(await (await fetch(`${http}/v1/health`, { headers: { authorization: 'Bearer not-a-token' } })).text()).not.toContain('tab-op-1');

    const banned = (await (await fetch(`${http}/v1/hosts/${volunteer.id}/ban`, { method: 'POST', headers: operator(), body: JSON.stringify({ reason: 'impostor' }) })).json()) as { bans: Array<{ kind: string; value: string }> };
    expect(banned.bans).toEqual([expect.objectContaining({ kind: 'host', value: 'vol-invite-abc123-tab-op-1' })]);

    // After a restart on the same ban database, the operator's tab with its own id is not
    // refused; the impostor is.
    const restarted = await start(new BanList(join(dir, 'bans.db')));
    expect((await hello(restarted.ws, operatorHost(), { hostId: 'tab-op-1', name: 'tab-1' })).first.type).toBe('welcome');
    expect((await hello(restarted.ws, invite(), { hostId: 'tab-op-1', name: 'tab-1' })).first).toMatchObject({ type: 'error', code: 'SIG_BANNED' });
  });
});
