/**
 * Carries an app's KV calls to the ingress as streams this tab opens on its session (even ids),
 * the same channel requests arrive on: no extra connection from the browser. The app's name goes
 * in the stream's head, set here by the host page and never by the app.
 */
import { ERRORS, isErrorCode, streamBody, type Session, type Stream } from '../../protocol/index.ts';
import { kvErrorAnswer, type KvAnswer, type KvCall, type KvTransport } from './namespace.ts';

/**
 * A transport for `app`'s bindings over whichever session `pick` returns when a call is made
 * (the first live one: with several ingresses, KV needs a store they share, see docs/kv.md).
 */
export function sessionKvTransport(app: string, pick: () => Session | null): KvTransport {
  return async (call) => {
    const session = pick();
    if (!session) return kvErrorAnswer('PROTO_SESSION_CLOSED', 503, 'this tab has no session with an ingress to send the KV operation on');
    const hasBody = call.body !== null && !(call.body instanceof Uint8Array && call.body.byteLength === 0);
    let stream: Stream;
    try {
      stream = session.open({ method: call.method, url: call.path, headers: call.headers, app }, !hasBody);
    } catch (err) {
      return kvErrorAnswer('PROTO_SESSION_CLOSED', 503, `the KV operation could not be sent: ${(err as Error).message}`);
    }
    const answer = new Promise<KvAnswer>((resolve) => {
      stream.onhead = (head) => {
        const answered = (body: KvAnswer['body']) => resolve({ status: head.status, headers: head.headers, body });
        if (stream.remoteEnded) return answered(null);
        // Small values come whole: a transferred stream per get costs the sandbox more than it saves.
        const length = Number(head.headers.find(([n]) => n === 'content-length')?.[1] ?? NaN);
        if (length <= SMALL_VALUE_BYTES) {
          collect(stream, length).then(answered, (err: { code?: string; message?: string }) => {
            const code = err.code ?? 'PROTO_SESSION_CLOSED';
            resolve(kvErrorAnswer(code, isErrorCode(code) ? ERRORS[code].status : 502, err.message ?? 'the value stream failed'));
          });
          return;
        }
        answered(readable(stream));
      };
      stream.onreset = (err) => resolve(kvErrorAnswer(err.code, isErrorCode(err.code) ? ERRORS[err.code].status : 502, err.message));
    });
    if (hasBody) void send(stream, call.body!);
    return answer;
  };
}

/** Values up to this size are read whole before the answer is handed over. */
const SMALL_VALUE_BYTES = 64 * 1024;

/** Reads a body of `length` bytes (the head said so) into one array. */
async function collect(stream: Stream, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  for await (const chunk of streamBody(stream)) {
    if (at + chunk.byteLength > length) throw Object.assign(new Error('the value is longer than its content-length'), { code: 'PROTO_STREAM_STATE' });
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  if (at !== length) throw Object.assign(new Error('the value is shorter than its content-length'), { code: 'PROTO_STREAM_STATE' });
  return out;
}

/** Writes a value to the stream with its flow control; a failed source resets the stream. */
async function send(stream: Stream, body: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  if (body instanceof Uint8Array) {
    try {
      await stream.write(body);
      stream.end();
    } catch {
      // the stream was reset: the answer says why
    }
    return;
  }
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await stream.write(value);
    }
    stream.end();
  } catch (err) {
    // Either the ingress refused (the stream is closed: its answer says why) or the app's
    // stream failed: tell the ingress, so the put leaves the old value in place.
    stream.reset('PROTO_CANCELLED', `the value stream failed: ${(err as Error)?.message ?? String(err)}`);
    void reader.cancel(err).catch(() => {});
  }
}

/** The answer's body as a byte stream that pulls from the session at the reader's pace. */
function readable(stream: Stream): ReadableStream<Uint8Array> {
  const chunks = streamBody(stream);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (err) {
          controller.error(err);
        }
      },
      cancel() {
        stream.reset('PROTO_CANCELLED', 'the handler stopped reading the value');
      },
    },
    { highWaterMark: 0 },
  );
}
