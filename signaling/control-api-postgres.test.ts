/**
 * Two signaling nodes on one real Postgres (tools/postgres.ts): a deploy through one reaches the
 * other's peers and says how far it got; a ban written anywhere cuts the matching host on the
 * node that holds it; with Postgres down, writes answer 503 APP_STORE_UNAVAILABLE while serving
 * (the manifest to hosts, code already cached) goes on.
 */
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignalingClient, type AppRef } from '../protocol/index.ts';
import { startPostgres, type PostgresServer } from '../tools/postgres.ts';
import { bundle, until } from '../test/control-store-suite.ts';
import { PgControlStore } from './pg-control-store.ts';
import { createSignalingServer, type SignalingServer } from './server.ts';
import { mintToken } from './token.ts';

const secret = 'control-pg-secret-0123456789';
const operator = mintToken(secret, { role: 'operator', ttlSeconds: 600 });
const hostToken = mintToken(secret, { role: 'host', ttlSeconds: 600 });
const TIMEOUT_MS = 1500;

let pgServer: PostgresServer;
const stores: PgControlStore[] = [];
let a: SignalingServer;
let b: SignalingServer;
let baseA: string;
let baseB: string;
const clients: SignalingClient[] = [];

beforeAll(async () => {
  pgServer = await startPostgres();
  await pgServer.createDatabase('control');
  const open = async () => {
    const s = await PgControlStore.open(pgServer.urlFor('control'), { timeoutMs: TIMEOUT_MS, listenRetryMs: 100 });
    stores.push(s);
    return s;
  };
  const [storeA, storeB] = [await open(), await open()];
  // Node A's barrier waits for both nodes, as the cluster wiring's presence.nodes() would report them.
  a = createSignalingServer({ secret, controlStore: storeA, controlCache: { refreshRetryMs: 100 }, clusterNodes: async () => [{ id: 'a', cv: a.control.cache.version }, { id: 'b', cv: b.control.cache.version }] });
  b = createSignalingServer({ secret, controlStore: storeB, controlCache: { refreshRetryMs: 100 } });
  baseA = await a.listen(0);
  baseB = await b.listen(0);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await a?.close();
  await b?.close();
  for (const s of stores) await s.close();
  await pgServer?.stop();
});

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${operator}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, code: res.headers.get('dcdn-error'), body: text ? JSON.parse(text) : null };
}

function tab(base: string, hostId: string) {
  const state = { apps: [] as AppRef[][], errors: [] as string[], welcomed: false };
  const client = new SignalingClient({ url: `${base.replace(/^http/, 'ws')}/v1/signal`, token: hostToken, info: { name: hostId, hostId } as never, WebSocketImpl: WebSocket as never });
  client.onapps = (apps) => state.apps.push(apps);
  client.onerror = (code) => state.errors.push(code);
  client.onwelcome = () => (state.welcomed = true);
  client.start();
  clients.push(client);
  return { client, state };
}

describe('two signaling nodes on one Postgres', () => {
  it('answers a deploy once both nodes applied it, and the other node\'s hosts hear of it', async () => {
    const onB = tab(baseB, 'tab-b1');
    await until(() => onB.state.apps.length > 0);
    const r = await call(baseA, 'PUT', '/v1/apps/hello', { code: bundle('v1'), check: false });
    expect(r.status).toBe(201);
    expect(r.body.propagated).toMatchObject({ nodes: 2, reached: 2, complete: true });
    expect(b.control.cache.version).toBeGreaterThanOrEqual(r.body.propagated.atVersion);
    await until(() => onB.state.apps.some((apps) => apps.some((x) => x.name === 'hello' && x.version === 1)));
    // Either node serves the code and the deployment id (the key is shared).
    const code = await fetch(`${baseB}/v1/apps/hello/versions/1/code?token=${hostToken}`);
    expect(await code.text()).toBe(bundle('v1'));
    expect(a.control.cache.manifest()).toEqual(b.control.cache.manifest());
  });

  it('cuts a host on node B when a ban is written through node A\'s store', async () => {
    const onB = tab(baseB, 'tab-banned');
    await until(() => onB.state.welcomed);
    await a.control.store.addBan('host', 'tab-banned', 'abuse');
    await until(() => onB.state.errors.includes('SIG_BANNED'));
    await until(() => !b.peers().some((p) => p.info?.['name'] === 'tab-banned'));
  });
});

// Last: it kills the server the tests above use.
describe('with Postgres down', () => {
  it('answers writes 503 APP_STORE_UNAVAILABLE and keeps serving the manifest and cached code', async () => {
    await pgServer.kill();
    const deploy = await call(baseA, 'PUT', '/v1/apps/hello', { code: bundle('v2'), check: false });
    expect(deploy).toMatchObject({ status: 503, code: 'APP_STORE_UNAVAILABLE' });
    expect(await call(baseB, 'PUT', '/v1/apps/hello/secrets/KEY', { value: 'v' })).toMatchObject({ status: 503, code: 'APP_STORE_UNAVAILABLE' });
    expect(await call(baseA, 'POST', '/v1/apps/hello/rollback', {})).toMatchObject({ status: 503, code: 'APP_STORE_UNAVAILABLE' });
    // Serving goes on: a host joining now gets the manifest, and the code B already fetched.
    const late = tab(baseB, 'tab-late');
    await until(() => late.state.apps.length > 0);
    expect(late.state.apps[0]).toMatchObject([{ name: 'hello', version: 1 }]);
    const code = await fetch(`${baseB}/v1/apps/hello/versions/1/code?token=${hostToken}`);
    expect(code.status).toBe(200);
    // Code never fetched on A is not there to serve: 503, the tab retries.
    const uncached = await fetch(`${baseA}/v1/apps/hello/versions/1/code?token=${hostToken}`);
    expect([uncached.status, uncached.headers.get('dcdn-error')]).toEqual([503, 'APP_STORE_UNAVAILABLE']);

    await pgServer.restart();
    await until(async () => (await call(baseA, 'PUT', '/v1/apps/hello', { code: bundle('v2'), check: false })).status === 201, 20_000);
    await until(() => late.state.apps.some((apps) => apps.some((x) => x.name === 'hello' && x.version === 2)), 20_000);
  });
});
