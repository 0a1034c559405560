/**
 * Issue 15.5, at signaling: a host relaying junk (or a flood of one kind of signal) to the
 * ingresses is closed with SIG_RATE_LIMITED after its per-kind budget, well under the
 * connection's overall rate limit; ICE candidates at the pace of a real connection pass.
 * Before, junk at 45/s (under the 50/s overall limit) was relayed in full.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ServerMessage } from '../protocol/index.ts';
import { createSignalingServer } from './server.ts';
import { mintToken } from './token.ts';
import { volunteerScope } from '../protocol/index.ts';

const SECRET = 'signal-budget-secret-0123456789';
const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface Peer {
  socket: WebSocket;
  received: ServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
  welcome: Extract<ServerMessage, { type: 'welcome' }>;
}

async function join(url: string, token: string, info: Record<string, unknown>): Promise<Peer> {
  const socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
  cleanup.push(() => socket.terminate());
  const received: ServerMessage[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  const welcome = new Promise<Extract<ServerMessage, { type: 'welcome' }>>((resolve, reject) => {
    socket.on('message', (data) => {
      const m = JSON.parse(String(data)) as ServerMessage;
      received.push(m);
      if (m.type === 'welcome') resolve(m);
    });
    socket.once('error', reject);
  });
  socket.once('open', () => socket.send(JSON.stringify({ type: 'hello', info })));
  return { socket, received, closed, welcome: await welcome };
}

async function network() {
  const server = createSignalingServer({ secret: SECRET });
  cleanup.push(() => server.close());
  const ws = (await server.listen(0)).replace(/^http/, 'ws') + '/v1/signal';
  const ingress = await join(ws, mintToken(SECRET, { role: 'ingress', ttlSeconds: 60 }), { name: 'ingress' });
  const host = await join(ws, mintToken(SECRET, { role: 'host', sub: 'invite-j', ttlSeconds: 60, scope: volunteerScope() }), { hostId: 'j', name: 'j' });
  return { ingress, host };
}

describe('per-kind signal budgets', () => {
  it('close a host relaying junk after its budget, before the ingress gets it all', async () => {
    const { ingress, host } = await network();
    for (let i = 0; i < 40; i++) host.socket.send(JSON.stringify({ type: 'signal', to: ingress.welcome.id, data: { junk: i } }));
    expect(await host.closed).toMatchObject({ code: 1008, reason: 'SIG_RATE_LIMITED' });
    expect(host.received.find((m) => m.type === 'error')).toMatchObject({ code: 'SIG_RATE_LIMITED', message: 'too many other signals' });
    expect(ingress.received.filter((m) => m.type === 'signal').length).toBeLessThanOrEqual(5);
  });

  it('let a connection attempt\'s offer, answer and candidates through', async () => {
    const { ingress, host } = await network();
    const send = (data: unknown) => host.socket.send(JSON.stringify({ type: 'signal', to: ingress.welcome.id, data }));
    send({ kind: 'answer', conn: 'c1', sdp: 'v=0' });
    for (let i = 0; i < 30; i++) send({ kind: 'candidate', conn: 'c1', candidate: { candidate: `candidate:${i}`, sdpMid: '0', sdpMLineIndex: 0 } });
    send({ kind: 'close', conn: 'c1', reason: 'done' });
    await new Promise<void>((resolve) => {
      const check = () => (ingress.received.filter((m) => m.type === 'signal').length === 32 ? resolve() : setTimeout(check, 10));
      check();
    });
    expect(host.socket.readyState).toBe(WebSocket.OPEN);
  });
});
