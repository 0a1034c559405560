/**
 * Issue 15.5, the log: a volunteer relaying junk signals to the ingress makes it write one line
 * per interval (with a count), not one per signal. Before, every junk signal was a log line
 * (8 volunteers at 45/s: 2,801 lines in 20 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { mintToken } from '../signaling/index.ts';
import { SignalingClient } from '../protocol/index.ts';
import { volunteerScope } from '../protocol/index.ts';
import { SECRET, startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

let net: NodeNetwork;
const lines: Array<{ msg: string; fields?: Record<string, unknown> }> = [];

beforeAll(async () => {
  // Signaling's per-kind signal budget would cut the junk off first; let it through, to see
  // what the ingress itself does with a flood.
  net = await startNodeNetwork({ log: (_level, msg, fields) => void lines.push({ msg, ...(fields ? { fields } : {}) }) }, { signalRateLimits: { other: { perSecond: 1000, burst: 1000 } } });
});
afterAll(() => net.close());

describe('a volunteer relaying junk signals', () => {
  it('gets one log line per interval at the ingress, not one per signal', async () => {
    const client = new SignalingClient({
      url: net.signalUrl,
      token: mintToken(SECRET, { role: 'host', sub: 'invite-junk', ttlSeconds: 60, scope: volunteerScope() }),
      info: { hostId: 'junk', name: 'junk' },
      WebSocketImpl: WebSocket as never,
    });
    const ingressId = new Promise<string>((resolve) => {
      client.onwelcome = (m) => resolve(m.peers.find((p) => p.role === 'ingress')!.id);
    });
    client.start();
    try {
      const to = await ingressId;
      for (let i = 0; i < 150; i++) client.send(to, { junk: i });
      // Positive sign that the ingress has taken the junk in: the first line, then a host that
      // joins signaling after all 150 were sent reaches the ingress's pool (signaling relays to
      // the ingress in order).
      await until(() => lines.some((l) => l.msg === 'ignored a malformed signal'), 5000);
      await net.addHost('marker', (s) => s.respond({ status: 200, headers: [] }, true));
      const junkLines = lines.filter((l) => l.msg.startsWith('ignored a malformed signal'));
      expect(junkLines).toHaveLength(1);
    } finally {
      client.close();
    }
  });
});
