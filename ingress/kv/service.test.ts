import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryChannelPair, Session, type HeaderList, type Stream } from '../../protocol/index.ts';
import { KvService } from './service.ts';
import { SqliteKvStore } from './sqlite-store.ts';

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** An ingress session serving KV from an in-memory store, and the host end that sends ops. */
async function setup(mayUse: (app: string) => boolean = () => true, idleTimeoutMs?: number) {
  const store = new SqliteKvStore(':memory:');
  const service = new KvService({ store, bindings: (app) => ({ hello: ['CACHE'], other: ['CACHE'] })[app], limits: { minTtlSeconds: 1 }, ...(idleTimeoutMs ? { idleTimeoutMs } : {}) });
  const [a, b] = createMemoryChannelPair({ maxMessageSize: 16 * 1024 });
  const ingress = new Session(a, { role: 'client' });
  const host = new Session(b, { role: 'server' });
  ingress.onstream = (stream) => void service.serve(stream, { host: 'tab-1', mayUse });
  open.push(store, ingress, host);
  await Promise.all([ingress.ready, host.ready]);
  return { host, service };
}

interface Answer {
  status?: number;
  headers?: HeaderList;
  body: string;
  reset?: { code: string; message: string };
}

function op(host: Session, method: string, url: string, app = 'hello', body?: string, headers: HeaderList = []): Promise<Answer> {
  const stream: Stream = host.open({ method, url, headers, app }, body === undefined);
  if (body !== undefined) void stream.write(new TextEncoder().encode(body)).then(() => stream.end(), () => {});
  return new Promise((resolve) => {
    let text = '';
    let head: { status: number; headers: HeaderList } | undefined;
    stream.onhead = (h) => (head = h);
    stream.ondata = (c) => {
      text += new TextDecoder().decode(c);
      stream.consume(c.byteLength);
    };
    stream.onend = () => resolve({ status: head?.status, headers: head?.headers, body: text });
    stream.onreset = (reset) => resolve({ body: text, reset });
  });
}

describe('KvService', () => {
  it('puts, gets, lists and deletes in the namespace of the app the stream names', async () => {
    const { host, service } = await setup();
    expect((await op(host, 'PUT', '/kv/CACHE/a%2Fb', 'hello', 'value', [['dcdn-kv-metadata', '{"v":1}']])).status).toBe(204);
    const got = await op(host, 'GET', '/kv/CACHE/a%2Fb');
    expect(got).toMatchObject({ status: 200, body: 'value' });
    expect(got.headers).toContainEqual(['dcdn-kv-metadata', '{"v":1}']);
    expect((await op(host, 'GET', '/kv/CACHE/a%2Fb', 'other')).status).toBe(404);
    const listed = JSON.parse((await op(host, 'GET', '/kv/CACHE?prefix=a')).body) as unknown;
    expect(listed).toEqual({ keys: [{ name: 'a/b', metadata: { v: 1 } }], list_complete: true });
    expect((await op(host, 'DELETE', '/kv/CACHE/a%2Fb')).status).toBe(204);
    expect((await op(host, 'GET', '/kv/CACHE/a%2Fb')).status).toBe(404);
    expect(service.stats).toMatchObject({ puts: 1, gets: 3, lists: 1, deletes: 1, errors: 0 });
  });

  it('refuses apps the host may not run, bindings the app lacks, and malformed operations', async () => {
    const { host } = await setup((app) => app === 'hello');
    expect((await op(host, 'GET', '/kv/CACHE/k', 'other')).reset?.code).toBe('KV_FORBIDDEN');
    expect((await op(host, 'GET', '/kv/CACHE/k', '')).reset?.code).toBe('KV_FORBIDDEN');
    expect((await op(host, 'GET', '/kv/SECRETS/k')).reset?.code).toBe('KV_UNKNOWN_BINDING');
    expect((await op(host, 'GET', '/kv/CACHE/%E0%A4%A')).reset?.code).toBe('KV_BAD_KEY');
    expect((await op(host, 'GET', `/kv/CACHE/${'x'.repeat(513)}`)).reset?.code).toBe('KV_BAD_KEY');
    expect((await op(host, 'GET', '/kv/CACHE/..')).reset?.code).toBe('KV_BAD_KEY');
    expect((await op(host, 'GET', '/other/CACHE/k')).reset?.code).toBe('KV_BAD_REQUEST');
    expect((await op(host, 'POST', '/kv/CACHE/k', 'hello', 'x')).reset?.code).toBe('KV_BAD_REQUEST');
    expect((await op(host, 'GET', '/kv/CACHE?limit=0')).reset?.code).toBe('KV_BAD_LIST');
    expect((await op(host, 'PUT', '/kv/CACHE/k', 'hello', 'x', [['dcdn-kv-expiration-ttl', '0']])).reset?.code).toBe('KV_BAD_EXPIRATION');
    expect((await op(host, 'PUT', '/kv/CACHE/k', 'hello', 'x', [['dcdn-kv-metadata', '{nope']])).reset?.code).toBe('KV_METADATA_TOO_LARGE');
    // The session itself is unharmed.
    expect((await op(host, 'PUT', '/kv/CACHE/k', 'hello', 'fine')).status).toBe(204);
  });

  it('fails a put whose tab stops sending with KV_TIMEOUT, and keeps the old value', async () => {
    const { host } = await setup(() => true, 200);
    expect((await op(host, 'PUT', '/kv/CACHE/k', 'hello', 'old')).status).toBe(204);
    const stalled: Stream = host.open({ method: 'PUT', url: '/kv/CACHE/k', headers: [], app: 'hello' }, false);
    await stalled.write(new TextEncoder().encode('part of a new value'));
    const reset = await new Promise<{ code: string }>((resolve) => (stalled.onreset = resolve));
    expect(reset.code).toBe('KV_TIMEOUT');
    expect((await op(host, 'GET', '/kv/CACHE/k')).body).toBe('old');
  });
});
