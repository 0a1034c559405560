import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { createIngress, type Ingress } from '../ingress/index.ts';
import type { PeerInfo } from '../protocol/index.ts';
import { until } from './network.ts';

const host = (id: string): PeerInfo => ({ id, role: 'host', info: { hostId: `tab-${id}`, name: id }, since: 0 });

/**
 * A signaling stand-in that welcomes the ingress with a chunked host list (welcome `more`, then
 * `peers` chunks) and records to whom the ingress then signals.
 */
async function chunkingServer() {
  const signalled = new Set<string>();
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; to?: string };
      if (message.type === 'signal') signalled.add(message.to!);
      if (message.type !== 'hello') return;
      socket.send(JSON.stringify({ type: 'welcome', id: 'ingress-1', role: 'ingress', peers: [host('a')], more: true }));
      socket.send(JSON.stringify({ type: 'peers', peers: [host('b')], done: false }));
      socket.send(JSON.stringify({ type: 'peers', peers: [host('c')], done: true }));
    });
  });
  const { port } = server.address() as { port: number };
  const close = () => {
    // ws's close waits for open connections to end: end them.
    for (const client of server.clients) client.terminate();
    return new Promise((resolve) => server.close(resolve));
  };
  return { url: `ws://127.0.0.1:${port}/v1/signal`, signalled, close };
}

let ingress: Ingress | undefined;
afterEach(async () => {
  await ingress?.close();
  ingress = undefined;
});

describe('an ingress welcomed with a chunked host list', () => {
  it('connects to every host of the welcome and its peers chunks', async () => {
    const server = await chunkingServer();
    ingress = createIngress({ signalUrl: server.url, token: 't', name: 'chunked', port: 0, transport: 'websocket', log: () => {} });
    await ingress.listen();
    try {
      await until(() => server.signalled.size === 3, 10_000, 'signals to the three hosts');
      expect([...server.signalled].sort()).toEqual(['a', 'b', 'c']);
    } finally {
      await server.close();
    }
  });
});
