/**
 * A tiny local server for the channel benchmark: serves the bench page (bench/channel-page.ts,
 * bundled with esbuild) on 127.0.0.1, a control WebSocket per tab (`/control?tab=NAME`) and
 * WebSocket data connections (`/data?id=ID`) that become {@link NodeWebSocketChannel}s.
 */
import { build } from 'esbuild';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { WS_MAX_MESSAGE_SIZE } from '../protocol/index.ts';
import { NodeWebSocketChannel } from '../ingress/ws-channel.ts';

const PAGE_ENTRY = fileURLToPath(new URL('./channel-page.ts', import.meta.url));
const HTML = '<!doctype html><html><head><meta charset="utf-8"><title>dcdn bench</title><link rel="icon" href="data:,"></head><body><script src="/page.js"></script></body></html>';

export type PageEvent = Record<string, unknown> & { ev: string; id: string };

/** Talks to one bench tab over its control WebSocket. */
export class TabControl {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(event: PageEvent) => void>();
  #seq = 0;

  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      if (typeof m.re === 'number') {
        const pending = this.#pending.get(m.re);
        this.#pending.delete(m.re);
        if (m.ok) pending?.resolve(m);
        else pending?.reject(new Error(`page: ${String(m.error)}`));
      } else {
        if (m.ev === 'error') process.stderr.write(`[bench page] ${String(m.message)}\n`);
        for (const listener of this.#listeners) listener(m as PageEvent);
      }
    });
    ws.on('close', () => {
      for (const p of this.#pending.values()) p.reject(new Error('the bench tab went away'));
      this.#pending.clear();
    });
  }

  /** Sends a request and resolves with the page's answer. */
  request(op: string, id: string, fields: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`page did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.#ws.send(JSON.stringify({ seq, op, id, ...fields }));
    });
  }

  /** Calls `listener` for every event; returns the unsubscribe function. */
  on(listener: (event: PageEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The next event `ev` about channel `id`. */
  next(ev: string, id: string, timeoutMs = 60_000): Promise<PageEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ${ev} event for ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on((event) => {
        if (event.ev !== ev || event.id !== id) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
    });
  }
}

export interface PageServer {
  /** `http://127.0.0.1:PORT/?tab=NAME` opens a bench tab named NAME. */
  pageUrl(tab: string): string;
  /** The URL a tab dials for WebSocket data connection `id`. */
  dataUrl(id: string): string;
  /** Resolves once tab `name` has connected its control WebSocket. */
  tab(name: string): Promise<TabControl>;
  /** Resolves with the Node end of WebSocket data connection `id` once the tab dials it. */
  dataChannel(id: string): Promise<NodeWebSocketChannel>;
  close(): Promise<void>;
}

/** Bundles the page and starts serving on 127.0.0.1:0. */
export async function startPageServer(): Promise<PageServer> {
  const bundle = await build({ entryPoints: [PAGE_ENTRY], bundle: true, format: 'iife', platform: 'browser', target: 'chrome120', write: false, logLevel: 'silent' });
  const script = bundle.outputFiles[0]!.text;
  const tabs = new Map<string, Deferred<TabControl>>();
  const data = new Map<string, Deferred<NodeWebSocketChannel>>();
  const deferred = <T>(map: Map<string, Deferred<T>>, key: string): Deferred<T> => {
    let d = map.get(key);
    if (!d) map.set(key, (d = makeDeferred<T>()));
    return d;
  };

  // Cross-origin isolation gives the page a 5 µs performance.now() instead of 100 µs, which the
  // tab-to-tab round trips are timed with.
  const isolated = { 'cache-control': 'no-store', 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/') res.writeHead(200, { ...isolated, 'content-type': 'text/html; charset=utf-8' }).end(HTML);
    else if (path === '/page.js') res.writeHead(200, { ...isolated, 'content-type': 'text/javascript; charset=utf-8' }).end(script);
    else res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_MESSAGE_SIZE + 1024 });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (url.pathname === '/control') deferred(tabs, url.searchParams.get('tab') ?? '').resolve(new TabControl(ws));
      else if (url.pathname === '/data') deferred(data, url.searchParams.get('id') ?? '').resolve(new NodeWebSocketChannel(ws));
      else ws.close(1008, 'unknown path');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    pageUrl: (tab) => `http://127.0.0.1:${port}/?tab=${encodeURIComponent(tab)}`,
    dataUrl: (id) => `ws://127.0.0.1:${port}/data?id=${encodeURIComponent(id)}`,
    tab: (name) => deferred(tabs, name).promise,
    dataChannel: (id) => {
      const d = deferred(data, id);
      return d.promise.finally(() => data.delete(id));
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function makeDeferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
