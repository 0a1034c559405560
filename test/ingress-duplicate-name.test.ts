import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { createIngress, type Ingress } from '../ingress/index.ts';
import { until } from './network.ts';

/**
 * A signaling stand-in that refuses every hello as cluster signaling refuses an ingress whose
 * name a newer connection took: an error message naming the other's address, then close 1008.
 */
async function nameTakenServer() {
  let hellos = 0;
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type !== 'hello') return;
      hellos += 1;
      socket.send(JSON.stringify({ type: 'error', code: 'SIG_DUPLICATE_PEER', message: 'ingress name ingress-a is registered by 10.0.0.9:41234 on node b' }));
      socket.close(1008, 'SIG_DUPLICATE_PEER');
    });
  });
  const { port } = server.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}/v1/signal`, hellos: () => hellos, close: () => new Promise((resolve) => server.close(resolve)) };
}

let ingress: Ingress | undefined;
afterEach(async () => {
  await ingress?.close();
  ingress = undefined;
});

describe('an ingress whose name another ingress took', () => {
  it('logs an error naming the other address and keeps retrying at its back-off', async () => {
    const server = await nameTakenServer();
    const errors: Array<{ msg: string; fields: Record<string, unknown> | undefined }> = [];
    ingress = createIngress({
      signalUrl: server.url,
      token: 't',
      name: 'ingress-a',
      port: 0,
      log: (level, msg, fields) => {
        if (level === 'error') errors.push({ msg, fields });
      },
    });
    await ingress.listen();
    try {
      await until(() => server.hellos() >= 3, 10_000, 'three attempts');
      const duplicates = errors.filter((e) => e.msg.includes('another ingress took this name'));
      expect(duplicates.length).toBeGreaterThanOrEqual(2);
      expect(duplicates[0]!.fields).toMatchObject({ name: 'ingress-a', detail: expect.stringContaining('10.0.0.9:41234') });
    } finally {
      await server.close();
    }
  });
});
