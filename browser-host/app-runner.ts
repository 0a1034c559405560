import { APP_FAILURE_CODES, headProblem, type Session, type Stream } from '../protocol/index.ts';
import type { AppRegistry } from './app-registry.ts';
import type { AppRuntime } from './app-runtime.ts';
import type { SandboxCall, SandboxReply, SandboxRequest } from './sandbox/sandbox.ts';
import { makeRequest, responseHeaderList } from './web-compat.ts';
import { serveWebSocket } from './ws-accept.ts';

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
    // One clock read per request: whether the ingress asks for timing is only known once the
    // TIMING_ASK behind the head is read, after this call returns.
    const received = hostNow();
    const stats = this.stats;
    stats.requests++;
    stats.inFlight++;
    let responseBody: ReadableStreamDefaultReader<Uint8Array> | null = null;
    let release = () => {};
    /**
     * Aborts the request as its handler sees it (request.signal). Set once the request is handed
     * over; a reset before then is seen by the `stream.closed` check that precedes it.
     */
    let cancel: ((reason: DOMException) => void) | null = null;
    stream.onreset = (err) => {
      cancel?.(new DOMException(`request cancelled: ${err.code}`, 'AbortError'));
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
      // Whatever of the request body the handler leaves unread is taken and dropped, so the
      // ingress can finish sending and the stream closes.
      const discardRest = body ? body.discard : () => discard(stream);
      if (!hasBody && stream.requestHasBody) discardRest();
      // A sandbox takes the request as plain data and answers with plain data (it builds the
      // Request and reads the Response in its worker); other runtimes take a Request.
      let reply: SandboxReply | null = null;
      let response: Response | null = null;
      const timed = stream.timingAsked;
      const toSandbox = timed ? hostNow() : 0;
      try {
        if (isRawRuntime(runtime)) {
          const call = runtime.fetchRaw({ method, url, headers, body: body?.stream ?? null, ...(timed ? { timed } : {}) }, { session });
          cancel = call.abort;
          reply = await call.reply;
        } else {
          const abort = new AbortController();
          cancel = (reason) => abort.abort(reason);
          const request = makeRequest(url, { method, signal: abort.signal, body: body?.stream ?? null, duplex: 'half' }, headers);
          response = await runtime.fetch(request, { session });
        }
      } catch (err) {
        this.#log(`${runtime.app}@${runtime.version}: ${method} ${url} failed: ${(err as Error).message}`);
        return fail(codeOf(err), (err as Error).message);
      }
      if (stream.closed) return; // cancelled while the handler ran
      // A WebSocket the handler accepted (Workers' 101 with a webSocket): ws-accept.ts.
      if (reply?.status === 101 || reply?.webSocket) return await serveWebSocket(stream, session, reply, (line) => this.#log(`${runtime.app}@${runtime.version}: ${url}: ${line}`), fail);
      const status = reply ? reply.status : response!.status;
      const out = reply ? reply.body : response!.body;
      const responseHeaders = reply ? reply.headers : responseHeaderList(response!.headers);
      // A Content-Length the ingress would refuse ("10, 10" from two headers, "abc") is the
      // app's mistake: say so with its code, rather than send a head the ingress blames us for.
      if (responseHeaders.some(([n]) => n.toLowerCase() === 'content-length') && declaredLength(responseHeaders) === undefined) {
        if (out instanceof Uint8Array) reply!.bodyDone(false);
        else void out?.cancel().catch(() => {});
        return fail('HOST_BAD_HANDLER_RESPONSE', "the app's content-length is not a single number");
      }
      const noBody = out === null || method === 'HEAD' || status === 204 || status === 304;
      // A head the ingress's decoder would refuse: say so now, with the app's code, rather than
      // send it and leave the ingress to guess (protocol/head-limits.ts).
      const tooBig = headProblem('', responseHeaders);
      if (tooBig) {
        if (out instanceof Uint8Array) reply!.bodyDone(false);
        else void out?.cancel().catch(() => {});
        if (!stream.remoteEnded) discardRest();
        this.#log(`${runtime.app}@${runtime.version}: ${method} ${url}: response head refused: ${tooBig.message}`);
        return fail('HOST_BAD_HANDLER_RESPONSE', `the response head is too large for the wire: ${tooBig.message}`);
      }
      if (timed) {
        // A runtime without a sandbox (Node hosts, tests) has no worker stamps: its whole call is the handler.
        const t = reply?.timing ?? { handlerStart: toSandbox, handlerHead: 0, headInPage: hostNow() };
        session.sendTiming(stream, { received, toSandbox, ...t, sent: hostNow() });
      }
      stream.respond({ status, headers: responseHeaders }, noBody);
      if (noBody) {
        if (out instanceof Uint8Array) reply!.bodyDone(false);
        else void out?.cancel().catch(() => {});
        if (!stream.remoteEnded) discardRest();
        return;
      }
      // The app's own Content-Length is checked here, where the app is known to be the one at
      // fault: a body longer or shorter than it is the app's bug (HOST_BAD_HANDLER_RESPONSE),
      // not a host breaking protocol, and the ingress counts it against the app.
      const declared = declaredLength(responseHeaders);
      let sent = 0;
      const overLength = (n: number) => declared !== undefined && sent + n > declared;
      const lengthLie = (what: string) => fail('HOST_BAD_HANDLER_RESPONSE', `the app's response body is ${what} than its content-length (${declared})`);
      if (out instanceof Uint8Array) {
        // The whole body came at once: write it, and tell the sandbox (which may have failed it meanwhile).
        if (overLength(out.byteLength)) {
          reply!.bodyDone(false);
          return lengthLie('longer');
        }
        stats.bytesOut += out.byteLength;
        sent += out.byteLength;
        if (out.byteLength > 0) await stream.write(out);
        reply!.bodyDone(true);
      } else {
        responseBody = out!.getReader();
        for (;;) {
          const { done, value } = await responseBody.read();
          if (done) break;
          if (stream.closed) return;
          if (overLength(value.byteLength)) {
            void responseBody.cancel('content-length exceeded').catch(() => {});
            return lengthLie('longer');
          }
          stats.bytesOut += value.byteLength;
          sent += value.byteLength;
          await stream.write(value);
        }
      }
      if (stream.closed) return;
      if (declared !== undefined && sent !== declared) return lengthLie('shorter');
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

/** Now as the TIMING frame carries it: ms since the epoch, sub-ms fractions kept (frames.ts HostTimes). */
function hostNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A runtime that takes requests as plain data (a sandbox), rather than as a `Request`. */
interface RawRuntime extends AppRuntime {
  fetchRaw(request: SandboxRequest, options: { session?: Session }): SandboxCall;
}

function isRawRuntime(runtime: AppRuntime): runtime is RawRuntime {
  return typeof (runtime as Partial<RawRuntime>).fetchRaw === 'function';
}

/** The app's Content-Length when it declared exactly one valid one, else undefined (not checked). */
function declaredLength(headers: ReadonlyArray<readonly [string, string]>): number | undefined {
  const values = headers.filter(([name]) => name.toLowerCase() === 'content-length').map(([, v]) => v.trim());
  if (values.length !== 1 || !/^\d{1,15}$/.test(values[0]!)) return undefined;
  return Number(values[0]);
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
