import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { HOST_RECONNECT_BACKOFF, HostAgent } from './host-agent.ts';
import type { AppRunner } from './app-runner.ts';

/**
 * A signaling stand-in that plays the cluster's newest-wins rule: the first hello with a given
 * host id is refused with SIG_DUPLICATE_PEER (as if another live tab held it), the rest welcomed.
 */
async function duplicateRefusingServer() {
  const hellos: Array<Record<string, unknown>> = [];
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; info: Record<string, unknown> };
      if (message.type !== 'hello') return;
      hellos.push(message.info);
      if (hellos.length === 1) {
        socket.send(JSON.stringify({ type: 'error', code: 'SIG_DUPLICATE_PEER', message: 'host id registered by 10.0.0.7 on node b' }));
        socket.close(1008, 'SIG_DUPLICATE_PEER');
      } else {
        socket.send(JSON.stringify({ type: 'welcome', id: `peer-${hellos.length}`, role: 'host', peers: [] }));
      }
    });
  });
  const { port } = server.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}/v1/signal`, hellos, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

beforeEach(() => {
  // The agent is page code: give it the two browser globals it touches at start.
  vi.stubGlobal('navigator', { userAgent: 'node-test', hardwareConcurrency: 2 });
  vi.stubGlobal('WebSocket', WebSocket);
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('HostAgent and SIG_DUPLICATE_PEER', () => {
  it('takes a fresh host id, reports it and reconnects with it in hello', async () => {
    const server = await duplicateRefusingServer();
    const lines: string[] = [];
    const agent = new HostAgent({ signalUrl: server.url, token: 't', name: 'dup', runner: {} as AppRunner, hostId: 'kept-id', signalingBackoff: { initialMs: 10 }, log: (l) => lines.push(l) });
    const renewed: string[] = [];
    agent.onhostid = (id) => renewed.push(id);
    agent.start();
    try {
      await until(() => agent.peerId === 'peer-2', 'a welcome after the duplicate refusal');
      expect(server.hellos.map((h) => h['hostId'])).toEqual(['kept-id', agent.hostId]);
      expect(agent.hostId).not.toBe('kept-id');
      expect(renewed).toEqual([agent.hostId]);
      expect(lines.some((l) => l.includes('duplicate peer id') && l.includes('10.0.0.7'))).toBe(true);
    } finally {
      agent.stop();
      await server.close();
    }
  });

  it('reconnects hosts after 0-1 s at first (SCALE-OUT §3.4.1)', () => {
    expect(HOST_RECONNECT_BACKOFF).toEqual({ initialMs: 1000, jitter: 1 });
  });
});
