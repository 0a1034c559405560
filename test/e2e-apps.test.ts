/**
 * Apps end to end: the real `dcdn` CLI deploys to the control plane, real Chromium tabs load
 * the versions live, the ingress routes by hostname and path prefix.
 */
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { BIN, runDcdn, type CliResult } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';

const fixture = (p: string) => fileURLToPath(new URL(`./fixtures/${p}`, import.meta.url));

let net: Network;
let ingress: Ingress;
let env: NodeJS.ProcessEnv;
const work = mkdtempSync(join(tmpdir(), 'dcdn-apps-e2e-'));

beforeAll(async () => {
  net = await startNetwork();
  ingress = await net.addIngress({ transport: 'webrtc' });
  // Short limits so a runaway handler is caught quickly.
  await Promise.all([net.addTab('apps-a', 'wallMs=3000&cpuMs=1500'), net.addTab('apps-b', 'wallMs=3000&cpuMs=1500')]);
  // Over the data channel, the default transport (a tab falls back to WebSocket only if it fails).
  await until(() => ingress.pool.list().filter((h) => h.transport === 'webrtc').length === 2, 20_000, 'hosts over webrtc');
  // No local state: the CLI is pointed at this network like at a remote one.
  env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
}, 60_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
});

async function dcdn(...args: string[]): Promise<CliResult> {
  return runDcdn(env, args);
}

function writeApp(name: string, body: string): string {
  const file = join(work, `${name}.ts`);
  writeFileSync(file, `export default { async fetch(request: Request, env: Record<string, string>) { ${body} } };\n`);
  return file;
}

/** A request with full control of the Host header (fetch() may not set it). */
function get(path: string, host?: string, init: { method?: string; body?: string; type?: string } = {}): Promise<{ status: number; text: string; code: string | null; servedBy?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${ingress.url}${path}`, { method: init.method ?? 'GET', headers: { ...(host ? { host } : {}), ...(init.type ? { 'content-type': init.type } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text, code: (res.headers['dcdn-error'] as string | undefined) ?? null, servedBy: res.headers['dcdn-host'] as string | undefined }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Waits until every host serves `text` for `path` (they load a new version independently). */
async function untilServed(path: string, text: string): Promise<void> {
  const end = Date.now() + 15_000;
  let streak = 0;
  while (streak < 6) {
    if (Date.now() > end) throw new Error(`${path} never served ${JSON.stringify(text)}`);
    streak = (await get(path)).text.includes(text) ? streak + 1 : 0;
  }
}

describe('deploying apps', () => {
  it('deploys, serves, redeploys and rolls back an app', async () => {
    const file = writeApp('hello', "return new Response('hello v1');");
    const first = await dcdn('deploy', file, '--name', 'hello');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('deployed hello version 1');
    expect(first.stderr).toMatch(/loaded on host apps-[ab] in \d+ ms/);
    // A remote network: the URLs are printed when the ingress's address is given.
    expect(first.stdout).not.toContain('/@hello/');
    const withUrls = await runDcdn({ ...env, DCDN_INGRESS: ingress.url, DCDN_BASE_DOMAIN: 'localhost' }, ['deploy', file, '--name', 'hello', '--message', 'same again']);
    const port = new URL(ingress.url).port;
    expect(withUrls.stdout).toContain(`http://hello.localhost:${port}/`);
    expect(withUrls.stdout).toContain(`${ingress.url}/@hello/`);
    await untilServed('/@hello/', 'hello v1');
    writeApp('hello', "return new Response('hello v3');");
    expect((await dcdn('deploy', file, '--name', 'hello')).stdout).toContain('version 3');
    await untilServed('/@hello/', 'hello v3');
    expect((await dcdn('rollback', 'hello')).stdout).toContain('version 2');
    await untilServed('/@hello/', 'hello v1');
    const listed = JSON.parse((await dcdn('apps', '--json')).stdout) as { apps: Array<{ name: string; activeVersion: number; versions: unknown[] }> };
    expect(listed.apps.find((a) => a.name === 'hello')).toMatchObject({ activeVersion: 2, versions: [{}, {}, {}] });
  }, 60_000);

  it('routes by hostname and by path prefix, and answers 404 for unknown apps', async () => {
    await dcdn('deploy', writeApp('route', "return new Response(new URL(request.url).pathname + ' ' + (request.headers.get('x-forwarded-prefix') ?? '-'));"), '--name', 'routed');
    await untilServed('/@routed/x', '/x /@routed');
    expect((await get('/deep/path?q=1', 'routed.localhost')).text).toBe('/deep/path -');
    const unknown = await get('/@nope/');
    expect(unknown.status).toBe(404);
    expect(unknown.code).toBe('INGRESS_UNKNOWN_APP');
    expect((await get('/', 'nope.localhost')).code).toBe('INGRESS_UNKNOWN_APP');
  }, 30_000);

  /** Deploys `source` as app `name`, expecting a refusal; returns what the CLI printed. */
  async function refusedDeploy(name: string, source: string): Promise<string> {
    const file = join(work, `refused-${name}.ts`);
    writeFileSync(file, source);
    const r = await dcdn('deploy', file, '--name', name);
    expect(r.code).toBe(1);
    return r.stderr;
  }

  it('refuses a bundle that does not build and keeps the running version', async () => {
    await dcdn('deploy', writeApp('stable', "return new Response('stable');"), '--name', 'stable');
    await untilServed('/@stable/', 'stable');
    expect(await refusedDeploy('stable', 'export default { fetch( { return 1 } };')).toContain('APP_BAD_BUNDLE');
    expect((await dcdn('deploy', fixture('npm-app/worker.ts'), '--name', 'Not_A_Name')).stderr).toContain('APP_BAD_NAME');
    expect((await get('/@stable/')).text).toBe('stable');
  }, 30_000);

  it('refuses a version that throws while loading in a tab, with the tab’s error, and keeps the running one', async () => {
    await dcdn('deploy', writeApp('loads', "return new Response('loads v1');"), '--name', 'loads');
    await untilServed('/@loads/', 'loads v1');
    const throwing = "throw new Error('config missing at startup');\nexport default { fetch: () => new Response('never') };\n";
    const threw = await refusedDeploy('loads', throwing);
    expect(threw).toContain('APP_LOAD_FAILED');
    expect(threw).toContain('config missing at startup');
    const noFetch = await refusedDeploy('loads', 'export default { hello: 1 };\n');
    expect(noFetch).toContain('APP_LOAD_FAILED');
    expect(noFetch).toMatch(/fetch/);
    // Neither became a version: the live one is untouched, and a rollback target is not a broken one.
    const listed = JSON.parse((await dcdn('apps', '--json')).stdout) as { apps: Array<{ name: string; activeVersion: number; versions: unknown[] }> };
    expect(listed.apps.find((a) => a.name === 'loads')).toMatchObject({ activeVersion: 1, versions: [{ version: 1 }] });
    expect((await get('/@loads/')).text).toBe('loads v1');
    // A first deploy that cannot load leaves no app behind (the route stays unknown).
    expect(await refusedDeploy('never-loads', throwing)).toContain('APP_LOAD_FAILED');
    expect((await get('/@never-loads/')).code).toBe('INGRESS_UNKNOWN_APP');
  }, 40_000);

  it('gives the handler plain vars from --var, kept with the version', async () => {
    const file = writeApp('vars', "return new Response(`${env.MODE}/${env.REGION}`);");
    expect((await dcdn('deploy', file, '--name', 'vars', '--var', 'MODE=prod', '--var', 'REGION=eu=west')).stdout).toContain('vars: env.MODE, env.REGION');
    await untilServed('/@vars/', 'prod/eu=west');
    await dcdn('deploy', file, '--name', 'vars', '--var', 'MODE=staging');
    await untilServed('/@vars/', 'staging/undefined');
    // A rollback restores the earlier version's vars with its code.
    await dcdn('rollback', 'vars');
    await untilServed('/@vars/', 'prod/eu=west');
    expect((await dcdn('deploy', file, '--name', 'vars', '--var', 'NOEQUALS')).stderr).toContain('NAME=VALUE');
  }, 40_000);

  it('lists the hosts serving each app, as the tabs report them', async () => {
    await dcdn('deploy', writeApp('counted', "return new Response('counted');"), '--name', 'counted');
    await untilServed('/@counted/', 'counted');
    type Listed = { apps: Array<{ name: string; hosts: Array<{ host: string; version: number; state: string }> }> };
    let hosts: Listed['apps'][number]['hosts'] = [];
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      hosts = (JSON.parse((await dcdn('apps', '--json')).stdout) as Listed).apps.find((a) => a.name === 'counted')!.hosts;
      if (hosts.filter((h) => h.state === 'serving').length === 2) break;
    }
    expect(hosts.map((h) => [h.host, h.version, h.state]).sort()).toEqual([
      ['apps-a', 1, 'serving'],
      ['apps-b', 1, 'serving'],
    ]);
    expect((await dcdn('apps')).stdout).toMatch(/counted {2}version 1[^\n]*\n(?:.*\n)*? {4}hosts: 2 serving v1\n/);
  }, 30_000);

  it('serves an app that imports an npm package', async () => {
    expect((await dcdn('deploy', fixture('npm-app/worker.ts'), '--name', 'npm')).code).toBe(0);
    await untilServed('/@npm/abc', 'viaMsgpackr');
    expect(JSON.parse((await get('/@npm/abc')).text)).toEqual({ viaMsgpackr: { path: '/abc', n: 42 } });
  }, 30_000);

  it('serves an unmodified Hono app written for Cloudflare Workers, with its env from secrets', async () => {
    expect((await dcdn('deploy', fixture('hono-app/worker.ts'), '--name', 'hono')).code).toBe(0);
    await untilServed('/@hono/', 'Hello from Hono!');
    expect(JSON.parse((await get('/users/7', 'hono.localhost')).text)).toMatchObject({ id: '7' });
    const echoed = await get('/echo', 'hono.localhost', { method: 'POST', type: 'application/json', body: '{"a":[1,2]}' });
    expect(JSON.parse(echoed.text)).toEqual({ a: [1, 2] });
    // A secret becomes env.GREETING; the hosts reload the app with it.
    const put = execFile(process.execPath, [BIN, 'secret', 'put', 'hono', 'GREETING'], { env });
    put.stdin!.end('Howdy');
    await new Promise((r) => put.on('exit', r));
    await untilServed('/@hono/', 'Howdy from Hono!');
    expect((await dcdn('apps')).stdout).not.toContain('Howdy');
  }, 40_000);

  it('rolls out a new version under steady load without a single failed request', async () => {
    const file = writeApp('live', "return new Response('live-1');");
    await dcdn('deploy', file, '--name', 'live');
    await untilServed('/@live/', 'live-1');
    let stop = false;
    const seen: Record<string, number> = {};
    const failures: string[] = [];
    const loaders = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const r = await get('/@live/').catch((e: Error) => ({ status: 0, text: e.message, code: null }));
        if (r.status !== 200) failures.push(`${r.status} ${r.code} ${r.text.slice(0, 80)}`);
        else seen[r.text] = (seen[r.text] ?? 0) + 1;
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    writeApp('live', "return new Response('live-2');");
    expect((await dcdn('deploy', file, '--name', 'live')).code).toBe(0);
    await untilServed('/@live/', 'live-2');
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(loaders);
    expect(failures).toEqual([]);
    expect(seen['live-1']).toBeGreaterThan(0);
    expect(seen['live-2']).toBeGreaterThan(0);
    // Steady load, not a trickle: the deploy happened under hundreds of requests.
    console.log(`deploy under load: ${JSON.stringify(seen)}`);
    expect(seen['live-1']! + seen['live-2']!).toBeGreaterThan(100);
  }, 40_000);

  it('answers deploy, rollback and secret put only once every host serves the change (issue 15.12)', async () => {
    const file = writeApp('switch', "return new Response(`${env.TAG}${env.EXTRA ? '+' + env.EXTRA : ''}`);");
    const servedBy = new Set<string>();
    /** 24 requests right after the command returned, 6 at a time (spread over both tabs): the answers seen. */
    const rightAfter = async (): Promise<string[]> => {
      const texts: string[] = [];
      for (let wave = 0; wave < 4; wave++) {
        for (const r of await Promise.all(Array.from({ length: 6 }, () => get('/@switch/')))) {
          texts.push(`${r.status} ${r.text}`);
          if (r.servedBy) servedBy.add(r.servedBy);
        }
      }
      return [...new Set(texts)];
    };
    const first = await dcdn('deploy', file, '--name', 'switch', '--var', 'TAG=v1');
    expect(first.stdout).toContain('live on 2/2 hosts');
    expect(first.code).toBe(0);
    expect(await rightAfter()).toEqual(['200 v1']);
    for (let round = 2; round <= 3; round++) {
      const next = await dcdn('deploy', file, '--name', 'switch', '--var', `TAG=v${round}`);
      expect(next.stdout).toContain('live on 2/2 hosts');
      expect(await rightAfter()).toEqual([`200 v${round}`]);
    }
    const back = await dcdn('rollback', 'switch');
    expect(back.stdout).toMatch(/switch is now at version 2\nlive on 2\/2 hosts\n/);
    expect(await rightAfter()).toEqual(['200 v2']);
    // A secret changes env but not the version: hosts reload, and the CLI waits for that too.
    const put = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, [BIN, 'secret', 'put', 'switch', 'EXTRA'], { env }, (_err, stdout) => resolve({ code: child.exitCode, stdout }));
      child.stdin!.end('from-secret');
    });
    expect(put.stdout).toContain('live on 2/2 hosts');
    expect(put.code).toBe(0);
    expect(await rightAfter()).toEqual(['200 v2+from-secret']);
    // The answers above came from both tabs, not from one that happened to switch first.
    expect([...servedBy].sort()).toEqual(['apps-a', 'apps-b']);
    // --rollout-timeout 0 answers at once, as before.
    const quick = await dcdn('rollback', 'switch', '--rollout-timeout', '0');
    expect(quick.stdout).not.toContain('live on');
    expect(quick.code).toBe(0);
  }, 90_000);

  it('stops serving a deleted app at once', async () => {
    await dcdn('deploy', writeApp('gone', "return new Response('here');"), '--name', 'gone');
    await untilServed('/@gone/', 'here');
    expect((await dcdn('delete', 'gone')).code).toBe(0);
    const end = Date.now() + 5000;
    let r = await get('/@gone/');
    while (r.status !== 404 && Date.now() < end) r = await get('/@gone/');
    expect(r.code).toBe('INGRESS_UNKNOWN_APP');
  }, 30_000);

  it('keeps apps in one browser from reading each other’s storage', async () => {
    // Each app tries every kind of browser storage; whatever works for alpha must be invisible
    // to beta. (In an opaque origin most of them refuse outright, which is fine too.)
    const probe = (write: boolean) =>
      `const seen = []; const w = ${write};` +
      "try { const c = await caches.open('c'); if (w) await c.put('https://x/k', new Response('alpha-secret')); const r = await c.match('https://x/k'); if (r) seen.push('cache:' + await r.text()); } catch (e) { seen.push('cache-refused'); }" +
      "try { const db = await new Promise((ok, no) => { const r = indexedDB.open('d'); r.onupgradeneeded = () => r.result.createObjectStore('s'); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); }); if (w) await new Promise((ok) => { const t = db.transaction('s', 'readwrite'); t.objectStore('s').put('alpha-secret', 'k'); t.oncomplete = ok; t.onerror = ok; }); const v = await new Promise((ok) => { const q = db.transaction('s').objectStore('s').get('k'); q.onsuccess = () => ok(q.result); q.onerror = () => ok(undefined); }); if (v) seen.push('idb:' + v); } catch (e) { seen.push('idb-refused'); }" +
      "if (w) globalThis.__secret = 'alpha-secret'; if (globalThis.__secret) seen.push('global:' + globalThis.__secret);" +
      "try { seen.push('parent:' + String(globalThis.parent?.location?.href)); } catch (e) { seen.push('parent-refused'); }" +
      'return new Response(JSON.stringify(seen));';
    await dcdn('deploy', writeApp('alpha', probe(true)), '--name', 'alpha');
    await dcdn('deploy', writeApp('beta', probe(false)), '--name', 'beta');
    await untilServed('/@alpha/', 'global:alpha-secret');
    for (let i = 0; i < 4; i++) expect((await get('/@alpha/')).text).toContain('global:alpha-secret');
    await untilServed('/@beta/', '[');
    for (let i = 0; i < 4; i++) {
      const seen = (await get('/@beta/')).text;
      expect(seen).not.toContain('alpha-secret');
      expect(seen).not.toMatch(/parent:http/);
    }
  }, 40_000);

  it('fails a runaway handler with its code without disturbing another app', async () => {
    await dcdn('deploy', writeApp('spin', "if (new URL(request.url).pathname === '/spin') { while (true) {} } return new Response('spin ok');"), '--name', 'spin');
    await dcdn('deploy', writeApp('calm', "return new Response('calm');"), '--name', 'calm');
    await untilServed('/@spin/', 'spin ok');
    await untilServed('/@calm/', 'calm');
    const started = Date.now();
    const spinning = get('/@spin/spin');
    // While one app's worker spins, the other app answers normally on the same tabs.
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 10; i++) expect((await get('/@calm/')).text).toBe('calm');
    const r = await spinning;
    expect(r.status).toBeGreaterThanOrEqual(502);
    expect(['HOST_HANDLER_CPU_LIMIT', 'HOST_HANDLER_TIMEOUT']).toContain(r.code);
    expect(Date.now() - started).toBeLessThan(10_000);
    // The runaway app's sandbox was recycled and serves again.
    await untilServed('/@spin/', 'spin ok');
  }, 40_000);
});
