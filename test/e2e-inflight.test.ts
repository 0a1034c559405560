/**
 * Version swaps with work in flight, end to end: the real `dcdn deploy` while a real Chromium tab
 * is streaming a response or running `ctx.waitUntil` work of the version being replaced. The old
 * version must finish what it started (the tab drains it) while new requests get the new one.
 */
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { runDcdn } from './cli.ts';
import { startNetwork, until, type Network } from './network.ts';

const VERSIONED_APP = fileURLToPath(new URL('./fixtures/versioned-app.ts', import.meta.url));

let net: Network;
let ingress: Ingress;
let env: NodeJS.ProcessEnv;
const work = mkdtempSync(join(tmpdir(), 'dcdn-inflight-e2e-'));

beforeAll(async () => {
  net = await startNetwork();
  ingress = await net.addIngress({ transport: 'websocket' });
  // One tab: every request of a test meets the same registry, so "old" and "new" are exact.
  await net.addTab('inflight-a');
  await until(() => ingress.pool.size === 1, 20_000, 'host');
  env = { ...process.env, DCDN_HOME: work, DCDN_SIGNAL: net.urls.http, DCDN_SECRET: net.secret };
}, 60_000);

afterAll(async () => {
  await net?.close();
  await disconnectBrowser();
  rmSync(work, { recursive: true, force: true });
});

/** Deploys `versionedApp(label)` as `name` with the real CLI. */
async function deploy(name: string, label: string): Promise<void> {
  const file = join(work, `${name}-${label}.ts`);
  writeFileSync(file, `import { versionedApp } from ${JSON.stringify(VERSIONED_APP)};\nexport default versionedApp(${JSON.stringify(label)});\n`);
  const r = await runDcdn(env, ['deploy', file, '--name', name]);
  expect(r.code, r.stderr).toBe(0);
}

async function get(path: string): Promise<string> {
  const res = await fetch(`${ingress.url}${path}`);
  return `${res.status} ${await res.text()}`;
}

/** Polls until `path` answers `text` (200) three times running; returns when it first did. */
async function untilServed(path: string, text: string, ms = 15_000): Promise<number> {
  const end = Date.now() + ms;
  let streak = 0;
  let first = 0;
  let last = '';
  while (streak < 3) {
    if (Date.now() > end) throw new Error(`${path} never served ${JSON.stringify(text)}; last: ${last}`);
    last = await get(path).catch((e: Error) => e.message);
    if (last === `200 ${text}`) {
      if (streak++ === 0) first = Date.now();
    } else streak = 0;
    if (streak === 0) await new Promise((r) => setTimeout(r, 50));
  }
  return first;
}

/** A streamed GET, chunk by chunk. */
function stream(path: string): { firstChunk: Promise<void>; done: Promise<{ status: number; text: string; endedAt: number }> } {
  let onFirst!: () => void;
  const firstChunk = new Promise<void>((r) => (onFirst = r));
  const done = new Promise<{ status: number; text: string; endedAt: number }>((resolve, reject) => {
    const req = httpRequest(`${ingress.url}${path}`, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        onFirst();
      });
      res.on('end', () => resolve({ status: res.statusCode!, text, endedAt: Date.now() }));
      res.on('error', (e) => reject(new Error(`${path}: the response broke off after ${JSON.stringify(text.slice(-40))}: ${e.message}`)));
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${path}: no progress for 60 s`)));
    req.end();
  });
  done.catch(() => onFirst());
  return { firstChunk, done };
}

/**
 * The app's waitUntil work calls back here: `/hold` is answered only on {@link release} (the
 * test decides when the work may go on), `/done` records that the work finished. Whether the
 * caller went away while held (its worker was ended) is recorded too.
 */
interface Callbacks {
  url: string;
  holds: Array<{ label: string; abandoned: boolean; res: ServerResponse }>;
  done: string[];
  release(): void;
  close(): Promise<void>;
}

async function callbackServer(): Promise<Callbacks> {
  const holds: Callbacks['holds'] = [];
  const done: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const label = url.searchParams.get('label') ?? '?';
    // The sandbox's worker has an opaque origin: a cross-origin GET it may read.
    res.setHeader('access-control-allow-origin', '*');
    if (url.pathname === '/hold') {
      const hold = { label, abandoned: false, res };
      res.on('close', () => {
        if (!res.writableEnded) hold.abandoned = true;
      });
      holds.push(hold);
      return;
    }
    if (url.pathname === '/done') done.push(label);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    holds,
    done,
    release() {
      for (const h of holds) if (!h.res.writableEnded && !h.abandoned) h.res.end('go on');
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('a new version while the old one has work in flight', () => {
  it('lets a streamed response of the old version finish, while new requests get the new one', async () => {
    await deploy('slow', 'v1');
    await untilServed('/@slow/', 'v1');
    const n = 10;
    const started = Date.now();
    // The v1 stream waits on us before its last line, so the swap below happens while it is
    // still going however long a loaded machine takes to deploy (else this proves nothing).
    const cb = await callbackServer();
    let finished: Awaited<ReturnType<typeof stream>['done']>;
    let v2At: number;
    try {
      const slow = stream(`/@slow/stream?n=${n}&ms=20&hold=${encodeURIComponent(cb.url)}`);
      await slow.firstChunk;
      await deploy('slow', 'v2');
      v2At = await untilServed('/@slow/', 'v2');
      await until(() => cb.holds.length === 1, 15_000, 'the v1 stream waiting before its last line');
      expect(cb.holds[0]).toMatchObject({ label: 'v1', abandoned: false });
      cb.release();
      finished = await slow.done;
    } finally {
      await cb.close();
    }
    expect(v2At).toBeLessThan(finished.endedAt);
    expect(finished.status).toBe(200);
    expect(finished.text).toBe(Array.from({ length: n }, (_, i) => `v1 chunk ${i}\n`).join(''));
    expect(await get('/@slow/')).toBe('200 v2');
    // And a new stream is all v2.
    const fresh = await stream('/@slow/stream?n=3&ms=10').done;
    expect(fresh.text).toBe('v2 chunk 0\nv2 chunk 1\nv2 chunk 2\n');
    console.log(`v2 served ${v2At - started} ms into a ${finished.endedAt - started} ms v1 stream`);
  }, 45_000);

  it('runs ctx.waitUntil work to its end although the version is replaced right after answering', async () => {
    const cb = await callbackServer();
    try {
      await deploy('later', 'w1');
      await untilServed('/@later/', 'w1');
      expect(await get(`/@later/later?cb=${encodeURIComponent(cb.url)}`)).toBe('200 w1 answered');
      // The work started, and waits on us.
      await until(() => cb.holds.length === 1, 10_000, 'the waitUntil work calling back');
      await deploy('later', 'w2');
      await untilServed('/@later/', 'w2');
      // w1 is retired now and draining. Were its waitUntil work ignored, the drain would have
      // ended its worker already: give that time to show before letting the work go on.
      await new Promise((r) => setTimeout(r, 500));
      expect(cb.holds[0]).toMatchObject({ label: 'w1', abandoned: false });
      cb.release();
      await until(() => cb.done.length === 1, 10_000, 'the waitUntil work finishing');
      expect(cb.done).toEqual(['w1']);
    } finally {
      await cb.close();
    }
  }, 45_000);

  it('(control) ends work that was not handed to waitUntil once the old version drains', async () => {
    // The same work, not registered: the drain does not wait for it and the worker is ended,
    // which is what the test above would see if waitUntil were ignored.
    const cb = await callbackServer();
    try {
      await deploy('loose', 'u1');
      await untilServed('/@loose/', 'u1');
      expect(await get(`/@loose/later?untracked=1&cb=${encodeURIComponent(cb.url)}`)).toBe('200 u1 answered');
      await until(() => cb.holds.length === 1, 10_000, 'the untracked work calling back');
      await deploy('loose', 'u2');
      await untilServed('/@loose/', 'u2');
      await until(() => cb.holds[0]!.abandoned, 10_000, "u1's worker being ended (its held request dropped)");
      cb.release();
      await new Promise((r) => setTimeout(r, 1000));
      expect(cb.done).toEqual([]);
    } finally {
      await cb.close();
    }
  }, 45_000);
});
