import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryChannelPair, Session, type Stream, type SqlWireRequest } from '../../protocol/index.ts';
import { SqlService } from './service.ts';
import type { SqlNamespace, SqlStore } from './store.ts';

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/**
 * A store that records what it was asked and answers one row, or waits until released: the
 * service's own checks are what is tested here (the stores have e2e-sql.test.ts).
 */
function recordingStore() {
  const calls: Array<{ ns: SqlNamespace; request: SqlWireRequest }> = [];
  const waiting: Array<() => void> = [];
  const store: SqlStore & { calls: typeof calls; hold: boolean; release(): void } = {
    kind: 'pglite',
    calls,
    hold: false,
    release: () => waiting.splice(0).forEach((r) => r()),
    async run(ns, request) {
      calls.push({ ns, request });
      if (store.hold) await new Promise<void>((r) => waiting.push(r));
      return [{ columns: ['n'], rows: [[1]], meta: { duration: 0, changes: 0, rows_read: 1, rows_written: 0, last_row_id: null, changed_db: false, size_after: null, served_by: 'test' } }];
    },
    async drop() {},
    async close() {},
  };
  return store;
}

async function setup(mayUse: (app: string) => boolean = () => true, maxConcurrentPerHost = 16) {
  const store = recordingStore();
  const service = new SqlService({ store, bindings: (app) => ({ hello: ['DB'], other: ['DB'] })[app], limits: { maxConcurrentPerHost, maxRequestBytes: 1024 } });
  const [a, b] = createMemoryChannelPair({ maxMessageSize: 16 * 1024 });
  const ingress = new Session(a, { role: 'client' });
  const host = new Session(b, { role: 'server' });
  ingress.onstream = (stream) => void service.serve(stream, { host: 'tab-1', mayUse });
  open.push(ingress, host);
  await Promise.all([ingress.ready, host.ready]);
  return { host, store };
}

function call(host: Session, body: unknown, app = 'hello', url = '/sql/DB'): Promise<{ status?: number; body: string; reset?: { code: string; message: string } }> {
  const stream: Stream = host.open({ method: 'POST', url, headers: [], app }, false);
  void stream.write(new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body))).then(() => stream.end(), () => {});
  return new Promise((resolve) => {
    let text = '';
    let status: number | undefined;
    stream.onhead = (h) => (status = h.status);
    stream.ondata = (c) => {
      text += new TextDecoder().decode(c);
      stream.consume(c.byteLength);
    };
    stream.onend = () => resolve({ status, body: text });
    stream.onreset = (reset) => resolve({ body: text, reset });
  });
}

const one = { mode: 'batch', statements: [{ sql: 'SELECT 1 AS n', params: [] }] };

describe('SqlService', () => {
  it('runs a call in the database of the app and binding the stream names', async () => {
    const { host, store } = await setup();
    const r = await call(host, one);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).results[0].rows).toEqual([[1]]);
    expect(store.calls[0]!.ns).toEqual({ app: 'hello', binding: 'DB' });
  });

  it('refuses a host that may not run the app (a volunteer, for an app without --volunteers) with SQL_FORBIDDEN', async () => {
    const { host, store } = await setup((app) => app !== 'hello');
    expect((await call(host, one)).reset?.code).toBe('SQL_FORBIDDEN');
    expect((await call(host, one, 'other')).status).toBe(200);
    expect(store.calls.map((c) => c.ns.app)).toEqual(['other']);
  });

  it('refuses a binding the app did not declare with SQL_UNKNOWN_BINDING', async () => {
    const { host } = await setup();
    expect((await call(host, one, 'hello', '/sql/OTHER')).reset?.code).toBe('SQL_UNKNOWN_BINDING');
    expect((await call(host, one, 'nobody')).reset?.code).toBe('SQL_UNKNOWN_BINDING');
  });

  it('refuses malformed calls with SQL_BAD_REQUEST', async () => {
    const { host, store } = await setup();
    const bodies = [
      'not json',
      { mode: 'drop', statements: [] },
      { mode: 'batch', statements: [] },
      { mode: 'batch', statements: [{ sql: '', params: [] }] },
      { mode: 'exec', statements: [{ sql: 'SELECT 1', params: [1] }] },
      { mode: 'batch', statements: [{ sql: 'x'.repeat(2000), params: [] }] }, // over maxRequestBytes
    ];
    for (const body of bodies) {
      expect((await call(host, body)).reset?.code).toBe('SQL_BAD_REQUEST');
    }
    expect(store.calls).toHaveLength(0);
  });

  it('refuses calls past the per-host limit with SQL_TOO_MANY_QUERIES, and takes them again once one ends', async () => {
    const { host, store } = await setup(() => true, 2);
    store.hold = true;
    const first = [call(host, one), call(host, one)];
    while (store.calls.length < 2) await new Promise((r) => setTimeout(r, 5));
    expect((await call(host, one)).reset?.code).toBe('SQL_TOO_MANY_QUERIES');
    store.release();
    expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
    store.hold = false;
    expect((await call(host, one)).status).toBe(200);
  });
});
