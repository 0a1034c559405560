/**
 * Runs a Workers-style handler (`{ fetch(Request) }`) on Node's http server through Web
 * `Request`/`Response`, as hono's Node adapter does: the floor the benchmark compares against.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { Readable } from 'node:stream';

export interface FetchHandler {
  fetch(request: Request): Response | Promise<Response>;
}

/** An http `request` listener that calls `app.fetch` and streams its response back. */
export function nodeListener(app: FetchHandler): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const headers = new Headers();
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    const method = req.method ?? 'GET';
    const hasBody = method !== 'GET' && method !== 'HEAD';
    const controller = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    let request: Request;
    try {
      request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, {
        method,
        headers,
        signal: controller.signal,
        ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: 'half' } : {}),
      } as RequestInit);
    } catch {
      res.writeHead(400).end();
      return;
    }
    Promise.resolve()
      .then(() => app.fetch(request))
      .then((response) => writeResponse(response, res))
      .catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
  };
}

async function writeResponse(response: Response, res: ServerResponse): Promise<void> {
  const head: string[] = [];
  response.headers.forEach((value, name) => head.push(name, value));
  res.writeHead(response.status, head);
  if (!response.body) return void res.end();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await once(res, 'drain');
    }
    res.end();
  } catch (err) {
    await reader.cancel(err).catch(() => {});
    res.destroy();
  }
}
