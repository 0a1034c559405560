import { APP_FAILURE_CODES, type Session, type Stream } from '../protocol/index.ts';
import type { AppRegistry } from './app-registry.ts';
import { makeRequest, responseHeaderList } from './web-compat.ts';

/** Counters shown on the host page and reported in health. */
export interface RunnerStats {
  requests: number;
  inFlight: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
}


/**
 * Serves the streams of one or more sessions with the apps in a registry.
 *
 * Each stream becomes a Web `Request` whose body is a `ReadableStream` fed from the stream with
 * credit handed back only as the handler reads; the `Response` body is read chunk by chunk and
 * each chunk written only after the previous one was accepted, so neither direction buffers more
 * than a window. A reset from the ingress aborts `request.signal` and cancels the response body.
 * The app version that took a request keeps it to the end, even if a new version goes live.
 */
export class AppRunner {
  readonly stats: RunnerStats = { requests: 0, inFlight: 0, errors: 0, bytesIn: 0, bytesOut: 0 };
  readonly #registry: AppRegistry;
  readonly #log: (line: string) => void;

  constructor(registry: AppRegistry, log: (line: string) => void = () => {}) {
    this.#registry = registry;
    this.#log = log;
  }

  /** Serves every stream the session's peer opens. */
  serve(session: Session): void {
    session.onstream = (stream) => void this.#handle(stream, session);
  }

  async #handle(stream: Stream, session: Session): Promise<void> {
    const abort = new AbortController();
    const stats = this.stats;
    stats.requests++;
    stats.inFlight++;
    let responseBody: ReadableStreamDefaultReader<Uint8Array> | null = null;
    let release = () => {};
    stream.onreset = (err) => {
      abort.abort(new DOMException(`request cancelled: ${err.code}`, 'AbortError'));
      void responseBody?.cancel(err.code).catch(() => {});
    };
    const fail = (code: string, message: string) => {
      stats.errors++;
      if (!stream.closed) stream.reset(code, message);
    };
    try {
      const { method, url, headers, app = '' } = stream.request;
      let runtime;
      try {
        ({ runtime, release } = await this.#registry.acquire(app));
      } catch (err) {
        return fail(codeOf(err), (err as Error).message);
      }
      if (stream.closed) return;
      const hasBody = stream.requestHasBody && method !== 'GET' && method !== 'HEAD';
      const body = hasBody ? requestBody(stream, stats) : null;
      const request = makeRequest(url, { method, signal: abort.signal, body: body?.stream ?? null, duplex: 'half' }, headers);
      // Whatever of the request body the handler leaves unread is taken and dropped, so the
      // ingress can finish sending and the stream closes.
      const discardRest = body ? body.discard : () => discard(stream);
      if (!hasBody && stream.requestHasBody) discardRest();
      let response: Response;
      try {
        response = await runtime.fetch(request, { session });
      } catch (err) {
        this.#log(`${runtime.app}@${runtime.version}: ${method} ${url} failed: ${(err as Error).message}`);
        return fail(codeOf(err), (err as Error).message);
      }
      if (stream.closed) return; // cancelled while the handler ran
      const noBody = response.body === null || method === 'HEAD' || response.status === 204 || response.status === 304;
      stream.respond({ status: response.status, headers: responseHeaderList(response.headers) }, noBody);
      if (noBody) {
        void response.body?.cancel().catch(() => {});
        if (!stream.remoteEnded) discardRest();
        return;
      }      responseBody = response.body!.getReader();
      for (;;) {
        const { done, value } = await responseBody.read();
        if (done) break;
        if (stream.closed) return;
        stats.bytesOut += value.byteLength;
        await stream.write(value);
      }
      stream.end();
      if (!stream.remoteEnded) discardRest();
    } catch (err) {
      if (stream.closed) return; // the reset explains it
      this.#log(`response failed: ${describe(err)}`);
      fail(codeOf(err), describe(err));
    } finally {
      stats.inFlight--;
      release();
    }
  }
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && APP_FAILURE_CODES.has(code) ? code : 'HOST_HANDLER_ERROR';
}

/** A pull-driven body: credit goes back to the ingress only as the handler reads. */
function requestBody(stream: Stream, stats: RunnerStats): { stream: ReadableStream<Uint8Array>; discard: () => void } {
  const queue: Uint8Array[] = [];
  let ended = false;
  let failed: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  stream.ondata = (chunk) => {
    // The view points into the message buffer; copy before it outlives this call.
    queue.push(chunk.slice());
    stats.bytesIn += chunk.byteLength;
    notify();
  };
  stream.onend = () => {
    ended = true;
    notify();
  };
  const previousReset = stream.onreset;
  stream.onreset = (err) => {
    failed = new DOMException(`request body aborted: ${err.code}`, 'AbortError');
    notify();
    previousReset?.(err);
  };
  const discardAll = () => {
    for (const c of queue.splice(0)) stream.consume(c.byteLength);
    discard(stream);
  };
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        while (queue.length === 0 && !ended && !failed) await new Promise<void>((r) => (wake = r));
        if (failed) return controller.error(failed);
        const chunk = queue.shift();
        if (chunk) {
          controller.enqueue(chunk);
          stream.consume(chunk.byteLength);
        } else if (ended) {
          controller.close();
        }
      },
      cancel: discardAll,
    },
    { highWaterMark: 0 },
  );
  return { stream: body, discard: discardAll };
}

/** Takes and drops whatever body is still to come, handing credit straight back. */
function discard(stream: Stream): void {
  stream.ondata = (chunk) => stream.consume(chunk.byteLength);
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
