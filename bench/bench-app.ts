/**
 * The handler every end-to-end target runs: the plain Node server (through bench/servers/
 * web-adapter.ts), workerd (bundled), and dcdn's host tabs (`--app bench/bench-app.ts`).
 * Only Web APIs, so the same code runs in all three.
 *
 * - `GET /`: a small hello-world text.
 * - `GET /bytes?n=N`: N bytes, streamed in 64 KiB chunks made as they are pulled.
 * - `POST /upload`: reads the whole body and answers its length.
 */
const CHUNK = 64 * 1024;
const MAX_BYTES = 4 * 1024 ** 3;
const HELLO = 'Hello, world!\n';

/** One 64 KiB pattern; each chunk is a fresh copy, since a runtime may take ownership of it. */
const template = new Uint8Array(CHUNK).map((_, i) => i & 0xff);

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname}`;
    if (route === 'GET /') return new Response(HELLO, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
    if (route === 'GET /bytes') return bytes(Math.min(MAX_BYTES, Math.max(0, Number(url.searchParams.get('n')) || 0)));
    if (route === 'POST /upload') return new Response(String(await countBody(request)), { headers: { 'content-type': 'text/plain' } });
    return new Response('not found\n', { status: 404 });
  },
};

function bytes(n: number): Response {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (sent >= n) return controller.close();
        const size = Math.min(CHUNK, n - sent);
        sent += size;
        controller.enqueue(template.slice(0, size));
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(n) } });
}

async function countBody(request: Request): Promise<number> {
  if (!request.body) return 0;
  let n = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    n += value.byteLength;
  }
}
