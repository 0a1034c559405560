import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AppStore } from './app-store.ts';
import { SignalingClient } from '../protocol/index.ts';
import type { AppRef } from '../protocol/index.ts';
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
    const idBefore = new AppStore(path);
    const deploymentId = idBefore.manifest()[0]!.sha256;
    idBefore.close();
    const second = new AppStore(path);
    // The same deployment id after a restart, so hosts do not reload every app.
    expect(second.manifest()).toMatchObject([{ name: 'keep', version: 2, sha256: deploymentId }]);
    expect(second.code('keep', 1)?.code).toBe(hello('a'));
    expect(second.secrets('keep')).toEqual({ TOKEN: 't' });
    second.close();
  });

  it('names a deployment with secrets by an id that cannot be recomputed from a guessed secret', () => {
    const a = new AppStore(':memory:');
    const b = new AppStore(':memory:');
    for (const s of [a, b]) {
      s.deploy('same', hello('x'));
      s.putSecret('same', 'PIN', '1234');
    }
    const codeHash = createHash('sha256').update(hello('x')).digest('hex');
    const guessed = createHash('sha256').update(codeHash).update(JSON.stringify([{ name: 'PIN', value: '1234' }])).digest('hex');
    expect(a.manifest()[0]!.sha256).not.toBe(guessed);
    // Keyed per store: the same code and secret give another id elsewhere.
    expect(a.manifest()[0]!.sha256).not.toBe(b.manifest()[0]!.sha256);
    a.close();
    b.close();
  });
});

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the rollout of a deployment (issue 15.12)', () => {
  it('says which hosts serve the active deployment, and with ?wait= answers once every host does', async () => {
    await call('PUT', '/v1/apps/roll', { code: hello('v1'), check: false });
    const seen: AppRef[][] = [];
    const tab = new SignalingClient({ url: `${base.replace(/^http/, 'ws')}/v1/signal`, token: hostToken, info: { name: 'tab-r' }, WebSocketImpl: WebSocket as never });
    tab.onapps = (apps) => seen.push(apps);
    tab.start();
    try {
      await until(() => seen.length > 0);
      const v1 = store.manifest().find((a) => a.name === 'roll')!;
      const before = await call('GET', '/v1/apps/roll/rollout');
      expect(before.body).toMatchObject({ app: 'roll', version: 1, sha256: v1.sha256, live: 0, total: 1, settled: false, hosts: [{ host: 'tab-r', state: 'loading', serving: null }] });
      // A waiting request answers when the host reports the deployment serving.
      const waiting = call('GET', '/v1/apps/roll/rollout?wait=60000');
      tab.reportStatus([{ name: 'roll', version: 1, state: 'serving', sha256: v1.sha256 }]);
      expect((await waiting).body).toMatchObject({ live: 1, total: 1, settled: true, hosts: [{ host: 'tab-r', state: 'live', serving: 1 }] });
      // A secret keeps the version but not the deployment: the host that serves the old one lags.
      await call('PUT', '/v1/apps/roll/secrets/KEY', { value: 'k' });
      const secretRoll = store.manifest().find((a) => a.name === 'roll')!;
      expect((await call('GET', '/v1/apps/roll/rollout?wait=0')).body).toMatchObject({ version: 1, live: 0, settled: false, hosts: [{ state: 'loading', serving: 1 }] });
      // A load that failed settles the rollout too, with the host that failed.
      const failing = call('GET', '/v1/apps/roll/rollout?wait=60000');
      tab.reportStatus([{ name: 'roll', version: 1, state: 'failed', sha256: secretRoll.sha256 }, { name: 'roll', version: 1, state: 'serving', sha256: v1.sha256 }]);
      expect((await failing).body).toMatchObject({ live: 0, total: 1, settled: true, hosts: [{ host: 'tab-r', state: 'failed', serving: 1 }] });
    } finally {
      tab.close();
    }
  });

  it('counts no host when none is connected, and refuses a malformed wait or an unknown app', async () => {
    await call('PUT', '/v1/apps/lonely', { code: hello('x'), check: false });
    // The previous test's tab may still be leaving: wait until signaling has let it go.
    let lonely = await call('GET', '/v1/apps/lonely/rollout?wait=60000');
    for (const end = Date.now() + 3000; lonely.body.total !== 0 && Date.now() < end; ) lonely = await call('GET', '/v1/apps/lonely/rollout');
    expect(lonely.body).toMatchObject({ live: 0, total: 0, settled: true, hosts: [] });
    expect(await call('GET', '/v1/apps/lonely/rollout?wait=soon')).toMatchObject({ status: 400, code: 'APP_BAD_QUERY' });
    expect(await call('GET', '/v1/apps/lonely/rollout?wait=-1')).toMatchObject({ status: 400, code: 'APP_BAD_QUERY' });
    expect(await call('GET', '/v1/apps/nope/rollout')).toMatchObject({ status: 404, code: 'APP_NOT_FOUND' });
    expect((await call('GET', '/v1/apps/lonely/rollout', undefined, hostToken)).code).toBe('SIG_TOKEN_SCOPE');
  });
});

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
      expect(seen[0]!.map((a) => [a.name, a.config])).toEqual([['open', { kv: ['CACHE'], volunteers: true, require: [], vars: {} }]]);
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
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('y'), config: { vars: { TOKEN: 'plain' } } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('y'), config: { vars: { 'not-an-id': 'x' } } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('y'), config: { vars: { BIG: 'x'.repeat(1025) } } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect(await call('PUT', '/v1/apps/cfg', { code: hello('y'), config: { vars: { C: 'x' }, kv: ['C'] } })).toMatchObject({ status: 400, code: 'APP_BAD_CONFIG' });
    expect((await call('GET', '/v1/apps')).body.apps[0].activeVersion).toBe(1);
  });
});

describe('checking a deploy on a host before it goes live', () => {
  let checkStore: AppStore;
  let checkServer: SignalingServer;
  let checkBase: string;
  const hosts: SignalingClient[] = [];

  beforeAll(async () => {
    checkStore = new AppStore(':memory:');
    checkServer = createSignalingServer({ secret, apps: checkStore, appCheckTimeoutMs: 1500 });
    checkBase = await checkServer.listen(0);
  });
  afterEach(async () => {
    for (const h of hosts.splice(0)) h.close();
    // close() only starts the WebSocket's closing handshake: until the server has seen it, the
    // host is still registered and the next test's deploy would ask it (and wait, or fail).
    await until(() => checkServer.peers().length === 0);
    for (const a of checkStore.list()) checkStore.delete(a.name);
  });
  afterAll(async () => {
    await checkServer.close();
    checkStore.close();
  });

  const deployTo = async (name: string, code: string, extra: Record<string, unknown> = {}) => {
    const res = await fetch(`${checkBase}/v1/apps/${name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ code, ...extra }),
    });
    return { status: res.status, code: res.headers.get('dcdn-error'), body: (await res.json()) as Record<string, any> };
  };

  /**
   * A host on a real signaling connection that fetches each candidate like a tab does and
   * "loads" it by a rule of the test's (the real load, in a browser sandbox, is e2e-apps'):
   * `answer` returns the error to report, '' for success, or null to stay silent.
   */
  async function host(name: string, answer: (code: string) => string | null, token = hostToken) {
    const seen: string[] = [];
    const client = new SignalingClient({ url: `${checkBase.replace(/^http/, 'ws')}/v1/signal`, token, info: { name }, WebSocketImpl: WebSocket as never });
    client.oncheck = async (check) => {
      const res = await fetch(`${checkBase}/v1/checks/${check.id}`, { headers: { authorization: `Bearer ${token}` } });
      const candidate = (await res.json()) as { app: string; code: string };
      seen.push(candidate.app);
      const error = answer(candidate.code);
      if (error !== null) client.checked(check.id, error === '', error, 12);
    };
    let welcomed = false;
    client.onwelcome = () => (welcomed = true);
    client.start();
    hosts.push(client);
    await until(() => welcomed);
    return seen;
  }

  it('makes a version live once a host loaded it, and says which host', async () => {
    const seen = await host('tab-a', () => '');
    const r = await deployTo('ok', hello('v1'));
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ version: 1, check: { status: 'ok', host: 'tab-a', ms: 12 } });
    expect(seen).toEqual(['ok']);
    expect(checkStore.manifest().map((a) => a.version)).toEqual([1]);
  });

  it('refuses a version a host could not load, with its error, and keeps the live one', async () => {
    await host('tab-a', (code) => (code.includes('boom') ? 'Error: boom at top level' : ''));
    expect((await deployTo('app', hello('good'))).status).toBe(201);
    const r = await deployTo('app', `throw new Error('boom'); export default {};`);
    expect(r).toMatchObject({ status: 422, code: 'APP_LOAD_FAILED' });
    expect(r.body.error.message).toContain('tab-a');
    expect(r.body.error.message).toContain('boom at top level');
    expect(checkStore.list()[0]).toMatchObject({ activeVersion: 1, versions: [{ version: 1 }] });
  });

  it('refuses a version no host loads in time, and a first deploy leaves no app behind', async () => {
    await host('tab-silent', () => null);
    const started = Date.now();
    const r = await deployTo('slow', hello('x'));
    expect(r).toMatchObject({ status: 422, code: 'APP_LOAD_FAILED' });
    expect(r.body.error.message).toContain('tab-silent');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect(checkStore.list()).toEqual([]);
  });

  it('skips the check when asked, or when no operator host is connected, and says so', async () => {
    expect((await deployTo('lonely', hello('x'))).body).toMatchObject({ version: 1, check: { status: 'skipped' } });
    await host('tab-silent', () => null);
    expect((await deployTo('lonely', hello('y'), { check: false })).body).toMatchObject({ version: 2, check: { status: 'off' } });
  });

  it('never asks a volunteer, who cannot fetch a candidate either', async () => {
    const volunteer = mintToken(secret, { role: 'host', ttlSeconds: 600, scope: ['volunteer'] });
    const seen = await host('vol', () => '', volunteer);
    const r = await deployTo('v', hello('x'), { config: { volunteers: true } });
    expect(r.body.check).toEqual({ status: 'skipped' });
    expect(seen).toEqual([]);
    const res = await fetch(`${checkBase}/v1/checks/anything`, { headers: { authorization: `Bearer ${volunteer}` } });
    expect(res.status).toBe(404);
  });

  it('does not give secrets back to an operator token', async () => {
    await deployTo('sec', hello('x'));
    checkStore.putSecret('sec', 'API_KEY', 'hunter2');
    const res = await fetch(`${checkBase}/v1/apps/sec/env`, { headers: { authorization: `Bearer ${operator}` } });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain('hunter2');
  });
});
