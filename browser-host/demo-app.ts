/**
 * The app `dcdn up` serves when no `--app` is given. It shows each part of the request path:
 *
 * - `GET /`: text naming the browser that answered (`navigator.userAgent`).
 * - `POST /echo`: the request body streamed back unchanged.
 * - `GET /stream?chunks=N&delay=MS`: N lines, MS apart, each sent as it is produced.
 * - `GET /bytes?n=N`: N bytes generated in the tab, streamed.
 * - `GET /headers`: the request headers as JSON.
 */
const MAX_CHUNKS = 10_000;
const MAX_DELAY_MS = 60_000;
const BYTES_CHUNK = 64 * 1024;

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    switch (`${request.method} ${url.pathname}`) {
      case 'GET /':
      case 'HEAD /':
        return new Response(
          `Hello from a browser tab.\nuser agent: ${navigator.userAgent}\nserved at: ${new Date().toISOString()}\n`,
          { headers: { 'content-type': 'text/plain; charset=utf-8' } },
        );
      case 'POST /echo':
      case 'PUT /echo': {
        const headers = new Headers({ 'content-type': request.headers.get('content-type') ?? 'application/octet-stream' });
        const length = request.headers.get('content-length');
        if (length) headers.set('content-length', length);
        return new Response(request.body, { headers });
      }
      case 'GET /stream':
        return streamLines(intParam(url, 'chunks', 5, 0, MAX_CHUNKS), intParam(url, 'delay', 200, 0, MAX_DELAY_MS), request.signal);
      case 'GET /bytes':
        return bytes(intParam(url, 'n', 1024, 0, Number.MAX_SAFE_INTEGER));
      case 'GET /headers':
        return Response.json(Object.fromEntries(request.headers));
      default:
        return new Response(`not found: ${request.method} ${url.pathname}\n`, { status: 404, headers: { 'content-type': 'text/plain' } });
    }
  },
};

function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  const n = raw === null ? fallback : Number(raw);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, Math.floor(n))) : fallback;
}

function streamLines(chunks: number, delayMs: number, signal: AbortSignal): Response {
  const encoder = new TextEncoder();
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i >= chunks) return controller.close();
      if (i > 0) await sleep(delayMs, signal);
      controller.enqueue(encoder.encode(`chunk ${i + 1}/${chunks} at ${new Date().toISOString()}\n`));
      i++;
    },
  });
  return new Response(body, { headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
}

function bytes(n: number): Response {
  // A fixed pattern refreshed per chunk from a counter, so the bytes are made here, not copied.
  let sent = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (sent >= n) return controller.close();
        const size = Math.min(BYTES_CHUNK, n - sent);
        const chunk = new Uint8Array(size);
        for (let i = 0; i < size; i++) chunk[i] = (sent + i) & 0xff;
        sent += size;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(n) } });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
