import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppStore } from './app-store.ts';
import { SignalingClient } from './client.ts';
import type { AppRef } from './messages.ts';
import { createSignalingServer, type SignalingServer } from './server.ts';
import { mintToken } from './token.ts';

const secret = 'control-secret-0123456789';
const operator = mintToken(secret, { role: 'operator', ttlSeconds: 600 });
const hostToken = mintToken(secret, { role: 'host', ttlSeconds: 600 });
const hello = (text: string) => `export default { fetch() { return new Response(${JSON.stringify(text)}); } };`;

let dir: string;
let store: AppStore;
let server: SignalingServer;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dcdn-apps-'));
  store = new AppStore(join(dir, 'apps.db'));
  server = createSignalingServer({ secret, apps: store });
  base = await server.listen(0);
});

afterAll(async () => {
  await server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  for (const a of store.list()) store.delete(a.name);
});

async function call(method: string, path: string, body?: unknown, token = operator) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, code: res.headers.get('dcdn-error'), body: text ? JSON.parse(text) : null, text };
}

describe('the control API', () => {
  it('deploys a version, lists it and serves its code to hosts', async () => {
    const r = await call('PUT', '/v1/apps/hello', { code: hello('v1'), message: 'first' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ app: 'hello', version: 1, message: 'first' });
    const list = await call('GET', '/v1/apps');
    expect(list.body.apps).toMatchObject([{ name: 'hello', activeVersion: 1, versions: [{ version: 1 }] }]);
    const code = await fetch(`${base}/v1/apps/hello/versions/1/code?token=${hostToken}`);
    expect(code.headers.get('content-type')).toContain('javascript');
    expect(await code.text()).toBe(hello('v1'));
  });

  it('keeps every version and rolls back to the previous or a named one', async () => {
    await call('PUT', '/v1/apps/hello', { code: hello('v1') });
    await call('PUT', '/v1/apps/hello', { code: hello('v2') });
    await call('PUT', '/v1/apps/hello', { code: hello('v3') });
    expect((await call('POST', '/v1/apps/hello/rollback', {})).body.version).toBe(2);
    expect((await call('POST', '/v1/apps/hello/rollback', { to: 1 })).body.version).toBe(1);
    expect(store.manifest()).toMatchObject([{ name: 'hello', version: 1 }]);
    expect((await call('POST', '/v1/apps/hello/rollback', { to: 9 })).code).toBe('APP_VERSION_NOT_FOUND');
    expect((await call('POST', '/v1/apps/hello/rollback', {})).code).toBe('APP_VERSION_NOT_FOUND');
  });

  it.each([
    ['a syntax error', 'export default { fetch( };', 'not valid JavaScript'],
    ['no default export', 'export const x = 1;', 'no default export'],
    ['an unbundled import', "import x from 'hono'; export default x;", 'imports hono'],
    ['an empty bundle', '', 'bytes'],
  ])('refuses a bundle with %s and leaves the running version untouched', async (_what, code, says) => {
    await call('PUT', '/v1/apps/hello', { code: hello('good') });
    const r = await call('PUT', '/v1/apps/hello', { code });
    expect(r.status).toBe(400);
    expect(r.code).toBe('APP_BAD_BUNDLE');
    expect(r.body.error.message).toContain(says);
    expect(store.manifest()).toMatchObject([{ name: 'hello', version: 1 }]);
  });

  it('refuses bad names and unknown apps with their codes', async () => {
    expect((await call('PUT', '/v1/apps/Bad_Name', { code: hello('x') })).code).toBe('APP_BAD_NAME');
    expect((await call('POST', '/v1/apps/nope/rollback', {})).code).toBe('APP_NOT_FOUND');
    expect((await call('DELETE', '/v1/apps/nope')).code).toBe('APP_NOT_FOUND');
  });

  it('requires an operator token to change anything, checked before the body is used', async () => {
    const none = await fetch(`${base}/v1/apps/hello`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(none.status).toBe(401);
    expect(none.headers.get('dcdn-error')).toBe('SIG_TOKEN_MISSING');
    expect((await call('PUT', '/v1/apps/hello', { code: hello('x') }, hostToken)).code).toBe('SIG_TOKEN_SCOPE');
    expect((await call('GET', '/v1/apps', undefined, hostToken)).code).toBe('SIG_TOKEN_SCOPE');
    expect(store.list()).toEqual([]);
  });

  it('stores secrets without ever listing their values, and gives them to hosts', async () => {
    await call('PUT', '/v1/apps/hello', { code: hello('x') });
    expect((await call('PUT', '/v1/apps/hello/secrets/API_KEY', { value: 's3cret' })).status).toBe(200);
    const list = await call('GET', '/v1/apps');
    expect(list.body.apps[0].secrets).toEqual(['API_KEY']);
    expect(list.text).not.toContain('s3cret');
    expect((await call('GET', '/v1/apps/hello/env', undefined, hostToken)).body.env).toEqual({ API_KEY: 's3cret' });
    // Hosts reload on a secret change: the deployment hash moves with it.
    const before = store.manifest()[0]!.sha256;
    await call('PUT', '/v1/apps/hello/secrets/API_KEY', { value: 'rotated' });
    expect(store.manifest()[0]!.sha256).not.toBe(before);
    expect((await call('PUT', '/v1/apps/hello/secrets/bad-name', { value: 'x' })).code).toBe('APP_BAD_SECRET');
  });

  it('tells connected peers the active versions on welcome and after every change', async () => {
    const seen: AppRef[][] = [];
    const client = new SignalingClient({ url: `${base.replace('http', 'ws')}/v1/signal`, token: mintToken(secret, { role: 'ingress', ttlSeconds: 60 }), WebSocketImpl: WebSocket as never });
    client.onapps = (apps) => seen.push(apps);
    client.start();
    try {
      await until(() => seen.length === 1);
      expect(seen[0]).toEqual([]);
      await call('PUT', '/v1/apps/hello', { code: hello('v1') });
      await until(() => seen.length === 2);
      expect(seen[1]).toMatchObject([{ name: 'hello', version: 1 }]);
      await call('DELETE', '/v1/apps/hello');
      await until(() => seen.length === 3);
      expect(seen[2]).toEqual([]);
    } finally {
      client.close();
    }
  });
});

describe('the app store', () => {
  it('keeps apps, versions and secrets across a restart', () => {
    const path = join(dir, 'durable.db');
    const first = new AppStore(path);
    first.deploy('keep', hello('a'));
    first.deploy('keep', hello('b'));
    first.putSecret('keep', 'TOKEN', 't');
    first.close();
    const second = new AppStore(path);
    expect(second.manifest()).toMatchObject([{ name: 'keep', version: 2 }]);
    expect(second.code('keep', 1)?.code).toBe(hello('a'));
    expect(second.secrets('keep')).toEqual({ TOKEN: 't' });
    second.close();
  });
});

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the control API and volunteers', () => {
  it('keeps secrets and apps not deployed --volunteers from volunteers, and tells their tabs only of theirs', async () => {
    await call('PUT', '/v1/apps/open', { code: hello('open'), config: { volunteers: true, kv: ['CACHE'] } });
    await call('PUT', '/v1/apps/shut', { code: hello('shut') });
    await call('PUT', '/v1/apps/open/secrets/API_KEY', { value: 'k' });
    const volunteer = mintToken(secret, { role: 'host', ttlSeconds: 600, scope: ['volunteer'] });
    const scoped = mintToken(secret, { role: 'host', ttlSeconds: 600, scope: ['volunteer', 'app:other'] });
    expect((await call('GET', '/v1/apps/open/env', undefined, hostToken)).body).toEqual({ env: { API_KEY: 'k' } });
    expect((await call('GET', '/v1/apps/open/env', undefined, volunteer)).body).toEqual({ env: {} });
    expect(await call('GET', '/v1/apps/shut/env', undefined, volunteer)).toMatchObject({ status: 404, code: 'APP_NOT_FOUND' });
    expect(await call('GET', '/v1/apps/shut/versions/1/code', undefined, volunteer)).toMatchObject({ status: 404, code: 'APP_NOT_FOUND' });
    expect(await call('GET', '/v1/apps/open/versions/1/code', undefined, scoped)).toMatchObject({ status: 404, code: 'APP_NOT_FOUND' });
    const code = await fetch(`${base}/v1/apps/open/versions/1/code`, { headers: { authorization: `Bearer ${volunteer}` } });
    expect(await code.text()).toBe(hello('open'));

    const seen: AppRef[][] = [];
    const tab = new SignalingClient({ url: `${base.replace(/^http/, 'ws')}/v1/signal`, token: volunteer, info: { name: 'vol' }, WebSocketImpl: WebSocket as never });
    tab.onapps = (apps) => seen.push(apps);
    tab.start();
    try {
      await until(() => seen.length > 0);
      expect(seen[0]!.map((a) => [a.name, a.config])).toEqual([['open', { kv: ['CACHE'], volunteers: true, require: [] }]]);
    } finally {
      tab.close();
    }
  });

  it('refuses malformed deploy options and a binding that clashes with a secret', async () => {
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('x'), config: { kv: ['not valid'] } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('x'), config: { require: ['quantum'] } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('x'), config: { surprise: true } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    await call('PUT', '/v1/apps/cfg', { code: hello('x') });
    await call('PUT', '/v1/apps/cfg/secrets/TOKEN', { value: 'v' });
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('y'), config: { kv: ['TOKEN'] } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect((await call('GET', '/v1/apps')).body.apps[0].activeVersion).toBe(1);
  });
});
