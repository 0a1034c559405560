/**
 * The app of the benchmark's kv section (bench/kv.ts), deployed as `kv` with the binding
 * `CACHE`. It times its own KV calls with `performance.now()`, inside the handler, so the
 * figures are what a handler waits for: the hop from its sandbox worker to the host page, the
 * stream on the tab's session to the ingress, the store, and back.
 *
 * - `GET /noop`: answers `ok` and touches nothing (the request the KV calls add to).
 * - `GET /putget?size=N&n=K&prefix=P`: K times, sequentially, `put` of a fresh key `P<i>` with
 *   an N-byte value, then `get` of it (text below 1 KiB, else arrayBuffer); answers
 *   `{"put": [ms…], "get": [ms…]}`.
 * - `GET /list?n=K&prefix=P&limit=L`: K sequential `list({ prefix: P, limit: L })`; answers
 *   `{"list": [ms…], "keys": <keys in the last page>}`.
 *
 * A value that comes back with the wrong length fails the request (500), so a broken store is
 * never timed as a fast one.
 */
interface Kv {
  get(key: string, type?: 'text' | 'arrayBuffer'): Promise<string | ArrayBuffer | null>;
  put(key: string, value: string | ArrayBufferView): Promise<void>;
  list(options?: { prefix?: string; limit?: number }): Promise<{ keys: Array<{ name: string }> }>;
}

/** Most operations one request may do: each request must answer well within the 30 s head timeout. */
const MAX_OPS = 500;

const round = (ms: number) => Math.round(ms * 1000) / 1000;

function valueOf(size: number): string | Uint8Array {
  // Small values as text (the common case), large ones as bytes; put() copies either.
  if (size < 1024) return 'v'.repeat(size);
  return new Uint8Array(size).map((_, i) => i & 0xff);
}

export default {
  async fetch(request: Request, env: { CACHE: Kv }): Promise<Response> {
    const url = new URL(request.url);
    const q = (name: string, fallback: number) => {
      const v = Number(url.searchParams.get(name) ?? fallback);
      return Number.isFinite(v) ? v : fallback;
    };
    const prefix = url.searchParams.get('prefix') ?? 'k:';
    switch (url.pathname) {
      case '/noop':
        return new Response('ok');
      case '/putget': {
        const size = Math.max(1, Math.min(1024 * 1024, q('size', 100)));
        const n = Math.max(1, Math.min(MAX_OPS, q('n', 100)));
        const value = valueOf(size);
        const type = size < 1024 ? 'text' : 'arrayBuffer';
        const put: number[] = [];
        const get: number[] = [];
        for (let i = 0; i < n; i++) {
          const key = `${prefix}${String(i).padStart(6, '0')}`;
          const t0 = performance.now();
          await env.CACHE.put(key, value);
          const t1 = performance.now();
          const got = await env.CACHE.get(key, type);
          const t2 = performance.now();
          const length = typeof got === 'string' ? got.length : got instanceof ArrayBuffer ? got.byteLength : -1;
          if (length !== size) return new Response(`get ${key}: ${length} bytes, expected ${size}`, { status: 500 });
          put.push(round(t1 - t0));
          get.push(round(t2 - t1));
        }
        return Response.json({ put, get });
      }
      case '/list': {
        const n = Math.max(1, Math.min(MAX_OPS, q('n', 100)));
        const limit = Math.max(1, Math.min(1000, q('limit', 100)));
        const list: number[] = [];
        let keys = 0;
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          const page = await env.CACHE.list({ prefix, limit });
          list.push(round(performance.now() - t0));
          keys = page.keys.length;
        }
        return Response.json({ list, keys });
      }
      default:
        return new Response('kv bench app\n', { status: 404 });
    }
  },
};
