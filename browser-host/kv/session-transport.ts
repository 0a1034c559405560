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
    // The ingress refuses more than its kvMaxConcurrentPerHost (64) at once; queue past ours.
    // A slot is held until the operation's stream is done, its value read to the end included.
    const release = await slotOf(session).acquire();
    return send1(app, session, call, release);
  };
}

/** KV operations one tab keeps open per session at once; more wait their turn. */
export const KV_CONCURRENCY = 32;

const slots = new WeakMap<Session, Slots>();
function slotOf(session: Session): Slots {
  let s = slots.get(session);
  if (!s) slots.set(session, (s = new Slots(KV_CONCURRENCY)));
  return s;
}

/** A counting semaphore: `acquire()` resolves with a release once a slot is free. */
class Slots {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

/**
 * One operation on `session`: resolves with the answer, a large value still streaming.
 * `release` is called once when the stream is done with (answered whole, failed, or its value
 * read to the end or cancelled).
 */
function send1(app: string, session: Session, call: KvCall, release: () => void): Promise<KvAnswer> {
  const hasBody = call.body !== null && !(call.body instanceof Uint8Array && call.body.byteLength === 0);
  let stream: Stream;
  try {
    stream = session.open({ method: call.method, url: call.path, headers: call.headers, app }, !hasBody);
  } catch (err) {
    release();
    return Promise.resolve(kvErrorAnswer('PROTO_SESSION_CLOSED', 503, `the KV operation could not be sent: ${(err as Error).message}`));
  }
  const answer = new Promise<KvAnswer>((resolve) => {
    const failed = (code: string, message: string) => {
      release();
      resolve(kvErrorAnswer(code, isErrorCode(code) ? ERRORS[code].status : 502, message));
    };
    stream.onhead = (head) => {
      const answered = (body: KvAnswer['body']) => resolve({ status: head.status, headers: head.headers, body });
      if (stream.remoteEnded) {
        release();
        return answered(null);
      }
      // Small values come whole: a transferred stream per get costs the sandbox more than it saves.
      const length = Number(head.headers.find(([n]) => n === 'content-length')?.[1] ?? NaN);
      if (length <= SMALL_VALUE_BYTES) {
        collect(stream, length).then(
          (bytes) => {
            release();
            answered(bytes);
          },
          (err: { code?: string; message?: string }) => failed(err.code ?? 'PROTO_SESSION_CLOSED', err.message ?? 'the value stream failed'),
        );
        return;
      }
      answered(readable(stream, release));
    };
    stream.onreset = (err) => failed(err.code, err.message);
  });
  if (hasBody) void send(stream, call.body!);
  return answer;
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
function readable(stream: Stream, done: () => void): ReadableStream<Uint8Array> {
  const chunks = streamBody(stream);
  // A value nobody reads still frees its slot when the ingress gives up on it (KV_TIMEOUT).
  const onreset = stream.onreset;
  stream.onreset = (err) => {
    onreset?.(err);
    done();
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await chunks.next();
          if (next.done) {
            done();
            controller.close();
          } else controller.enqueue(next.value);
        } catch (err) {
          done();
          controller.error(err);
        }
      },
      cancel() {
        done();
        stream.reset('PROTO_CANCELLED', 'the handler stopped reading the value');
      },
    },
    { highWaterMark: 0 },
  );
}
