/**
 * Issue 15.8: `--heap-limit` must bound an app's memory however it allocates, not only its
 * JavaScript heap. A Chromium of this file's own, launched like `dcdn up` launches host tabs
 * but with a 128 MiB limit so that the allocations stay small; one page runs two sandboxed apps.
 */
import { build } from 'esbuild';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, resolveBrowser, type LaunchedBrowser } from '../browser-host/launcher/index.ts';
import { sandboxRuntimePlugin } from '../browser-host/sandbox/build.ts';

const LIMIT_MB = 128;
/** Each handler stops at this much and answers `survived`: a failing test allocates no more. */
const CAP_MB = 1024;

/**
 * Allocates 8 MiB at a time, touching every page, with an `await` between allocations (so it
 * answers pings and neither `cpuMs` nor V8's heap limit sees it), in the way `?how=` names.
 * 20 ms between allocations: on a quiet machine a hog yielding only a turn reached the 1 GiB cap
 * and answered in well under a second, between two of the watchdog's looks (every 100 ms, then
 * the kill), so the test raced the machine's speed; at 20 ms the limit is passed after ~0.3 s and
 * the cap is ~2.6 s away.
 */
const HOG = `
const tick = () => new Promise((r) => setTimeout(r, 20));
const MiB = 1024 * 1024;
const ways = {
  typed: (i) => new Float64Array(MiB).fill(i + 0.5),
  arraybuffer: (i) => { const b = new ArrayBuffer(8 * MiB); new Uint8Array(b).fill(i); return b; },
  wasm: (i, keep) => { keep.memory ??= new WebAssembly.Memory({ initial: 1, maximum: 65536 }); keep.memory.grow(128); new Uint8Array(keep.memory.buffer).fill(i); return null; },
  clone: (i, keep) => { keep.seed ??= new Float64Array(MiB).fill(1); return structuredClone(keep.seed); },
  // A flat string of its own each time ('x'.repeat() builds ropes that share their halves).
  string: (i) => new TextDecoder().decode(new Uint8Array(8 * MiB).fill(97 + (i % 26))),
};
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== '/hog') return new Response('hello from ' + env.NAME);
    const make = ways[url.searchParams.get('how')];
    const keep = [];
    for (let i = 0; i < ${CAP_MB / 8}; i++) {
      keep.push(make(i, keep));
      await tick();
    }
    return new Response('survived ' + keep.length);
  },
};
`;

const PAGE_HELPERS = `
window.apps = {};
window.call = async (app, path) => {
  const started = performance.now();
  try {
    const response = await window.apps[app].fetch(new Request('https://app.test' + path));
    return { ok: true, status: response.status, text: await response.text(), ms: performance.now() - started };
  } catch (e) {
    return { ok: false, code: e && e.code, message: String(e && e.message), ms: performance.now() - started };
  }
};
window.start = (name, code) => dcdnSandbox.createSandbox({ appName: name, version: 1, code, env: { NAME: name } })
  .then((s) => { window.apps[name] = s; return s.stats; }, (e) => ({ code: e.code, message: e.message }));
`;

type Outcome = { ok: true; status: number; text: string; ms: number } | { ok: false; code: string | undefined; message: string; ms: number };
interface TestWindow {
  apps: Record<string, { stats: { recycled: number; requests: number } }>;
  call(app: string, path: string): Promise<Outcome>;
  start(name: string, code: string): Promise<unknown>;
}
declare const window: TestWindow;

let launched: LaunchedBrowser;
let browser: Browser;
let server: http.Server;
let origin: string;
const kills: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const bundle = await build({
    stdin: { contents: "export * from './browser-host/sandbox/index.ts';", resolveDir: new URL('..', import.meta.url).pathname, loader: 'ts' },
    bundle: true,
    format: 'iife',
    globalName: 'dcdnSandbox',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
    plugins: [sandboxRuntimePlugin()],
  });
  const script = bundle.outputFiles[0]!.text;
  server = http.createServer((req, res) => {
    if (req.url === '/sandbox.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>memory test</title><script src="/sandbox.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  launched = await launchBrowser({
    executablePath: resolveBrowser().path,
    heapLimitMb: LIMIT_MB,
    logger: {
      warn: () => {},
      error: (fields, message) => {
        if (message.startsWith('killed a renderer')) kills.push(fields);
      },
    },
  });
  await launched.detach();
  browser = await puppeteer.connect({ browserWSEndpoint: launched.wsEndpoint, defaultViewport: null });
}, 60_000);

afterAll(async () => {
  await browser?.disconnect();
  await launched?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

async function openPage(): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.evaluate(PAGE_HELPERS);
  for (const name of ['M', 'N']) expect(await page.evaluate((n, c) => window.start(n, c), name, HOG)).toMatchObject({ requests: 0 });
  return page;
}

describe(`a handler allocating past --heap-limit (${LIMIT_MB} MiB) outside the JavaScript heap`, () => {
  it('is stopped with HOST_SANDBOX_CRASHED for typed arrays with awaits, while another app keeps serving', async () => {
    const page = await openPage();
    const result = await page.evaluate(async () => {
      const hog = window.call('M', '/hog?how=typed');
      // N answers throughout: one request before M is stopped, and keeps count of those after.
      const during = await window.call('N', '/');
      const crashed = await hog;
      const after = { m: await window.call('M', '/'), n: await window.call('N', '/') };
      return { crashed, during, after, stats: { m: window.apps['M']!.stats, n: window.apps['N']!.stats } };
    });
    await page.close();
    expect(result.crashed).toMatchObject({ ok: false, code: 'HOST_SANDBOX_CRASHED' });
    expect(result.during).toMatchObject({ ok: true, text: 'hello from N' });
    expect(result.after.m).toMatchObject({ ok: true, text: 'hello from M' });
    expect(result.after.n).toMatchObject({ ok: true, text: 'hello from N' });
    expect(result.stats.m.recycled).toBe(1);
    expect(result.stats.n.recycled).toBe(0);
    // The launcher's watchdog did it, and the process was stopped near the limit, not at gigabytes.
    console.log(`[sandbox-memory] watchdog kills: ${JSON.stringify(kills)}`);
    expect(kills.length).toBeGreaterThanOrEqual(1);
    expect(kills[0]).toMatchObject({ limitMb: LIMIT_MB });
    expect(kills[0]!.usedMb as number).toBeLessThan(CAP_MB);
  }, 60_000);

  // Not Blob: its bytes live in the browser process (docs/sandbox.md, Known limits).
  it.each(['arraybuffer', 'wasm', 'clone', 'string'])('is stopped with HOST_SANDBOX_CRASHED when it allocates by %s', async (how) => {
    const page = await openPage();
    const result = await page.evaluate(async (h) => {
      const crashed = await window.call('M', `/hog?how=${h}`);
      return { crashed, n: await window.call('N', '/'), recycled: window.apps['N']!.stats.recycled };
    }, how);
    await page.close();
    expect(result.crashed).toMatchObject({ ok: false, code: 'HOST_SANDBOX_CRASHED' });
    expect(result).toMatchObject({ n: { ok: true, text: 'hello from N' }, recycled: 0 });
  }, 60_000);
});
