/**
 * The runner blames the app for what the app did wrong: a response body longer or shorter than
 * the app's own Content-Length is reset with the app's code (HOST_BAD_HANDLER_RESPONSE), which
 * the ingress counts against the app, not the host (issue 15.4). Before, the bytes went out as
 * the app made them and the ingress blamed the host for the mismatch.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryChannelPair } from '../protocol/memory-channel.ts';
import { Session, type Stream, type StreamError } from '../protocol/index.ts';
import type { AppRegistry } from './app-registry.ts';
import { AppRunner } from './app-runner.ts';
import type { AppRuntime } from './app-runtime.ts';

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function serve(handler: (req: Request) => Response | Promise<Response>) {
  const runtime: AppRuntime = { app: 'lie', version: 1, fetch: async (req) => handler(req), drain: async () => {}, close() {} };
  const registry = { acquire: async () => ({ runtime, release() {} }) } as unknown as AppRegistry;
  const [a, b] = createMemoryChannelPair();
  const client = new Session(a, { role: 'client' });
  const server = new Session(b, { role: 'server' });
  open.push(client, server);
  new AppRunner(registry).serve(server);
  await Promise.all([client.ready, server.ready]);
  return client;
}

function exchange(client: Session): Promise<{ status?: number; bytes: number; error?: StreamError }> {
  const stream: Stream = client.open({ method: 'GET', url: 'http://x/', headers: [], app: 'lie' }, true);
  let status: number | undefined;
  let bytes = 0;
  return new Promise((resolve) => {
    stream.onhead = (h) => (status = h.status);
    stream.ondata = (c) => {
      bytes += c.byteLength;
      stream.consume(c.byteLength);
    };
    stream.onend = () => resolve({ status, bytes });
    stream.onreset = (error) => resolve({ status, bytes, error });
  });
}

const streamOf = (...chunks: string[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const chunk of chunks) c.enqueue(new TextEncoder().encode(chunk));
      c.close();
    },
  });

describe('AppRunner and the app\'s Content-Length', () => {
  it('resets with HOST_BAD_HANDLER_RESPONSE when the body is longer, without sending the excess', async () => {
    const client = await serve(() => new Response(streamOf('hello', ' world'), { headers: { 'content-length': '5' } }));
    const r = await exchange(client);
    // The reset may overtake the head and bytes still queued; either way no excess byte is sent.
    expect(r.error?.code).toBe('HOST_BAD_HANDLER_RESPONSE');
    expect(r.error?.message).toMatch(/longer/);
    expect(r.bytes).toBeLessThanOrEqual(5);
  });

  it('resets with HOST_BAD_HANDLER_RESPONSE when the body ends short', async () => {
    const client = await serve(() => new Response(streamOf('hi'), { headers: { 'content-length': '10' } }));
    const r = await exchange(client);
    expect(r.error?.code).toBe('HOST_BAD_HANDLER_RESPONSE');
    expect(r.error?.message).toMatch(/shorter/);
  });

  it('ends normally when the body matches its Content-Length, or declares none', async () => {
    const exact = await exchange(await serve(() => new Response(streamOf('hello'), { headers: { 'content-length': '5' } })));
    expect(exact).toEqual({ status: 200, bytes: 5 });
    const none = await exchange(await serve(() => new Response(streamOf('a', 'bc'))));
    expect(none).toEqual({ status: 200, bytes: 3 });
  });

  it('refuses a Content-Length that is not one number with HOST_BAD_HANDLER_RESPONSE, before any head', async () => {
    const headers = new Headers();
    headers.append('content-length', '5');
    headers.append('content-length', '5'); // Headers joins them: "5, 5"
    const r = await exchange(await serve(() => new Response(streamOf('hello'), { headers })));
    expect(r.status).toBeUndefined();
    expect(r.error?.code).toBe('HOST_BAD_HANDLER_RESPONSE');
  });
});
