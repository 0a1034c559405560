/**
 * Measures per-app sandboxes against calling the same app in the page, side by side in one run,
 * once per IsolateSandboxedIframes grouping. A program, not a test:
 *
 *   node --import tsx bench/sandbox.ts [--oom] [--phases hello,concurrent,start,echo,cpu]
 *
 * Prints one JSON object per grouping: request overhead (hello world, 1000 sequential requests
 * after warm-up), hello-world throughput with 50 requests in flight and the renderers' CPU per
 * request, start-up time, echo throughput, how CPU-bound work in several apps shares the cores,
 * renderer processes for four sandboxes, and (--oom) what an out-of-memory worker does to its
 * own and to another app's sandbox. The sandbox is measured through `fetch(Request)` and, where
 * it has it, through `fetchRaw()` (plain data, as the host page's runner calls it). Timings on a
 * loaded machine are noise: see loadAverage.
 */
import { build } from 'esbuild';
import { createServer } from 'node:http';
import { cpus, loadavg } from 'node:os';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import { launchBrowser, resolveBrowser } from '../browser-host/launcher/index.ts';
import { sandboxRuntimePlugin } from '../browser-host/sandbox/build.ts';

const GROUPINGS = {
  'per-site (Chromium default)': [],
  'per-document': ['--enable-features=IsolateSandboxedIframes:grouping/per-document'],
} as const;

/**
 * Installs `window.bench`, one function per measurement, in the page (`dcdnSandbox` is the bundle
 * of ./index.ts). Plain JS, sent as text; each phase is its own evaluate() and time budget.
 */
const PAGE_BENCH = String.raw`
const HELLO = 'export default { fetch() { return new Response("hello") } }';
const ECHO = 'export default { fetch(req) { return new Response(req.body) } }';
const BUSY = 'export default { fetch(req) { const n = Number(new URL(req.url).searchParams.get("n")); let x = 1; for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; } return new Response(String(x)); } }';
const OOM = 'export default { fetch(req) { if (new URL(req.url).pathname !== "/oom") return new Response("ok"); const keep = []; for (;;) keep.push(new Array(1e6).fill(Math.random())); } }';
const ctx = { waitUntil() {}, passThroughOnException() {} };
const inPage = async (code) => {
  const app = (await import(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })))).default;
  return { fetch: async (req) => app.fetch(req, {}, ctx), close() {} };
};
const sandbox = (name, code, limits) => dcdnSandbox.createSandbox({ appName: name, version: 1, code, limits });
// A request as the host page's runner makes it (app-runner.ts), where the sandbox has fetchRaw().
const rawRequest = () => ({ method: 'GET', url: 'https://bench.test/', headers: [['host', 'bench.test'], ['user-agent', 'bench']], body: null });
const viaRaw = (box) => ({
  async fetch() {
    const reply = await box.fetchRaw(rawRequest()).reply;
    if (reply.body instanceof Uint8Array) reply.bodyDone(true);
    else if (reply.body) await new Response(reply.body).arrayBuffer();
    return reply;
  },
});
const p = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q / 100 * s.length))]; };
const r3 = (x) => Math.round(x * 1000) / 1000;

const bench = (window.bench = {
  // Request overhead: hello world, 1000 sequential requests after 300 of warm-up.
  async hello() {
    const latency = async (runtime, n) => {
      const xs = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await (await runtime.fetch(new Request('https://bench.test/'))).text();
        xs.push(performance.now() - t);
      }
      return { xs, mean: (performance.now() - t0) / n };
    };
    const latencyRaw = async (box, n) => {
      const xs = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await viaRaw(box).fetch();
        xs.push(performance.now() - t);
      }
      return { xs, mean: (performance.now() - t0) / n };
    };
    const helloPage = await inPage(HELLO);
    const helloBox = await sandbox('hello', HELLO);
    const raw = typeof helloBox.fetchRaw === 'function';
    await latency(helloPage, 300); await latency(helloBox, 300);
    if (raw) await latencyRaw(helloBox, 300);
    const a = await latency(helloPage, 1000), b = await latency(helloBox, 1000);
    const c = raw ? await latencyRaw(helloBox, 1000) : null;
    await helloBox.close();
    // performance.now() is coarsened to 0.1 ms in a page that is not cross-origin isolated.
    const summary = (l) => ({ p50: r3(p(l.xs, 50)), p99: r3(p(l.xs, 99)), mean: r3(l.mean) });
    return {
      inPage: summary(a), sandbox: summary(b), overheadP50: r3(p(b.xs, 50) - p(a.xs, 50)), overheadMean: r3(b.mean - a.mean),
      ...(c ? { sandboxRaw: summary(c), rawOverheadP50: r3(p(c.xs, 50) - p(a.xs, 50)), rawOverheadMean: r3(c.mean - a.mean) } : {}),
    };
  },

  // Throughput: hello world with 50 requests in flight (as at 50 connections), in the page and
  // in a sandbox. The caller times each run and reads the renderers' CPU time around it.
  async concurrentSetup() {
    window.helloRuntimes = { 'in the page': await inPage(HELLO) };
    const box = await sandbox('concurrent', HELLO);
    window.helloRuntimes['sandbox, fetch(Request)'] = box;
    if (typeof box.fetchRaw === 'function') window.helloRuntimes['sandbox, fetchRaw'] = viaRaw(box);
    for (const kind of Object.keys(window.helloRuntimes)) await bench.concurrentRun(kind, 1000);
    return Object.keys(window.helloRuntimes);
  },
  async concurrentRun(kind, n = 5000) {
    const runtime = window.helloRuntimes[kind];
    const one = kind === 'sandbox, fetchRaw' ? () => runtime.fetch() : () => runtime.fetch(new Request('https://bench.test/')).then((r) => r.text());
    let next = 0;
    const t = performance.now();
    await Promise.all(Array.from({ length: 50 }, async () => { while (next++ < n) await one(); }));
    return { n, ms: performance.now() - t };
  },

  // Start-up: createSandbox() until the module has loaded.
  async start() {
    const starts = [];
    for (let i = 0; i < 10; i++) { const t = performance.now(); const s = await sandbox('start' + i, HELLO); starts.push(performance.now() - t); await s.close(); }
    return { p50: r3(p(starts, 50)), max: r3(Math.max(...starts)) };
  },

  // Echo throughput: 64 MiB in 64 KiB chunks, read to the end; and a 32 MiB download.
  async echo() {
    const echo = async (runtime) => {
      const total = 64 << 20, chunk = new Uint8Array(64 << 10);
      let sent = 0;
      const body = new ReadableStream({ pull(c) { if (sent >= total) return c.close(); sent += chunk.length; c.enqueue(chunk.slice()); } }, { highWaterMark: 0 });
      const t = performance.now();
      const reader = (await runtime.fetch(new Request('https://bench.test/', { method: 'POST', body, duplex: 'half' }))).body.getReader();
      let got = 0;
      for (;;) { const { done, value } = await reader.read(); if (done) break; got += value.length; }
      return r3(got / 1e6 / ((performance.now() - t) / 1000));
    };
    const echoBox = await sandbox('echo', ECHO);
    const echoPage = await inPage(ECHO);
    await echo(echoBox);
    const result = { inPage: await echo(echoPage), sandbox: await echo(echoBox) };
    await echoBox.close();
    return result;
  },

  // CPU: the same fixed work, k requests at once, in one runtime or spread over k runtimes. The
  // caller times each run and reads the renderers' CPU time around it.
  async cpuSetup() {
    window.busyBoxes = [];
    for (let i = 0; i < 4; i++) window.busyBoxes.push(await sandbox('busy' + i, BUSY));
    window.busyPage = await inPage(BUSY);
    await bench.cpuRun('four sandboxes, one request each');
  },
  async cpuRun(kind) {
    const n = 2e8; // about 300 ms of one core on the machine this was written on
    const [runtimes, k] = {
      'one sandbox, one request': [window.busyBoxes.slice(0, 1), 1],
      'one sandbox, two requests': [window.busyBoxes.slice(0, 1), 2],
      'two sandboxes, one request each': [window.busyBoxes.slice(0, 2), 2],
      'four sandboxes, one request each': [window.busyBoxes, 4],
      'in the page, two requests': [[window.busyPage], 2],
    }[kind];
    const t = performance.now();
    await Promise.all(Array.from({ length: k }, (_, i) => runtimes[i % runtimes.length].fetch(new Request('https://bench.test/?n=' + n)).then((r) => r.text())));
    return performance.now() - t;
  },

  // What an out-of-memory worker does to its own sandbox and to another app's.
  async oom() {
    const victim = await sandbox('victim', HELLO, { wallMs: 30000 });
    const hog = await sandbox('hog', OOM, { wallMs: 30000 });
    const t = performance.now();
    const failed = await hog.fetch(new Request('https://bench.test/oom')).then(() => 'answered?', (e) => e.code);
    const afterMs = Math.round(performance.now() - t);
    const victimAnswer = await victim.fetch(new Request('https://bench.test/')).then((r) => r.text(), (e) => e.code);
    const hogAgain = await hog.fetch(new Request('https://bench.test/')).then((r) => r.text(), (e) => e.code);
    const result = { hogFailedWith: failed, afterMs, victimAnswer, victimRecycled: victim.stats.recycled, hogAnswersAgain: hogAgain };
    await victim.close();
    await hog.close();
    return result;
  },
});
`;

const CPU_RUNS = ['one sandbox, one request', 'one sandbox, two requests', 'two sandboxes, one request each', 'four sandboxes, one request each', 'in the page, two requests'];

/**
 * Wall time of each CPU run (median of three, interleaved) and the cores it kept busy: renderer
 * CPU time over wall time, which other load on the machine does not inflate the way it does wall
 * time.
 */
async function cpuRuns(page: Page, cpuSeconds: () => Promise<number>): Promise<Record<string, { wallMs: number; coresBusy: number }>> {
  const samples = new Map<string, Array<{ wallMs: number; coresBusy: number }>>(CPU_RUNS.map((k) => [k, []]));
  for (let rep = 0; rep < 3; rep++) {
    for (const kind of CPU_RUNS) {
      const cpu0 = await cpuSeconds();
      const wallMs = (await page.evaluate(`window.bench.cpuRun(${JSON.stringify(kind)})`)) as number;
      const cpu = (await cpuSeconds()) - cpu0;
      samples.get(kind)!.push({ wallMs: Math.round(wallMs), coresBusy: Math.round((cpu / (wallMs / 1000)) * 100) / 100 });
    }
  }
  const mid = <T>(xs: T[], key: (x: T) => number) => [...xs].sort((a, b) => key(a) - key(b))[xs.length >> 1]!;
  return Object.fromEntries([...samples].map(([k, xs]) => [k, { wallMs: mid(xs, (x) => x.wallMs).wallMs, coresBusy: mid(xs, (x) => x.coresBusy).coresBusy }]));
}

/**
 * Requests per second with 50 in flight and the renderers' CPU µs per request, for each way of
 * calling the app: median of three runs, interleaved.
 */
async function concurrentRuns(page: Page, cpuSeconds: () => Promise<number>): Promise<Record<string, { rps: number; rendererUsPerRequest: number }>> {
  const kinds = (await page.evaluate('window.bench.concurrentSetup()')) as string[];
  const samples = new Map<string, Array<{ rps: number; rendererUsPerRequest: number }>>(kinds.map((k) => [k, []]));
  for (let rep = 0; rep < 3; rep++) {
    for (const kind of kinds) {
      const cpu0 = await cpuSeconds();
      const { n, ms } = (await page.evaluate(`window.bench.concurrentRun(${JSON.stringify(kind)})`)) as { n: number; ms: number };
      const cpu = (await cpuSeconds()) - cpu0;
      samples.get(kind)!.push({ rps: Math.round(n / (ms / 1000)), rendererUsPerRequest: Math.round((cpu * 1e6) / n) });
    }
  }
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  return Object.fromEntries([...samples].map(([k, xs]) => [k, { rps: mid(xs.map((x) => x.rps)), rendererUsPerRequest: mid(xs.map((x) => x.rendererUsPerRequest)) }]));
}

async function pageScript(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('../browser-host/sandbox/index.ts', import.meta.url))],
    bundle: true,
    format: 'iife',
    globalName: 'dcdnSandbox',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
    plugins: [sandboxRuntimePlugin()],
  });
  return result.outputFiles[0]!.text;
}

async function main(): Promise<void> {
  const withOom = process.argv.includes('--oom');
  const phasesAt = process.argv.indexOf('--phases');
  const phases = new Set((phasesAt > 0 ? process.argv[phasesAt + 1]! : 'hello,concurrent,start,echo,cpu').split(','));
  const script = await pageScript();
  const server = createServer((req, res) => {
    if (req.url === '/sandbox.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>sandbox bench</title><script src="/sandbox.js"></script>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    for (const [grouping, extraArgs] of Object.entries(GROUPINGS)) {
      const browser = await launchBrowser({ executablePath: resolveBrowser().path, extraArgs });
      try {
        const [page] = await browser.openTabs(url, 1, { timeoutMs: 15_000, readyExpression: 'typeof dcdnSandbox === "object"' });
        const cdp = await page!.browser().target().createCDPSession();
        const processes = async () => (await cdp.send('SystemInfo.getProcessInfo')).processInfo as Array<{ type: string; cpuTime: number }>;
        const renderers = async () => (await processes()).filter((p) => p.type === 'renderer').length;
        const cpuSeconds = async () => (await processes()).filter((p) => p.type === 'renderer').reduce((sum, p) => sum + p.cpuTime, 0);
        const before = await renderers();
        await page!.evaluate(PAGE_BENCH);
        const results: Record<string, unknown> = { grouping, cores: cpus().length };
        for (const phase of ['hello', 'concurrent', 'start', 'echo']) {
          if (!phases.has(phase)) continue;
          process.stderr.write(`${grouping}: ${phase}\n`);
          results[phase] = phase === 'concurrent' ? await concurrentRuns(page!, cpuSeconds) : await page!.evaluate(`window.bench.${phase}()`);
        }
        if (phases.has('cpu')) {
          process.stderr.write(`${grouping}: cpu\n`);
          await page!.evaluate('window.bench.cpuSetup()');
          results['renderersForFourSandboxes'] = (await renderers()) - before;
          results['cpu'] = await cpuRuns(page!, cpuSeconds);
        }
        if (withOom) {
          process.stderr.write(`${grouping}: oom\n`);
          results['oom'] = await page!.evaluate('window.bench.oom()');
        }
        results['loadAverage'] = loadavg().map((x) => Math.round(x * 10) / 10);
        console.log(JSON.stringify(results, null, 2));
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

await main();
