import { describeError, SandboxError } from './errors.ts';

/** How a guarded body ended: read to the end, cancelled by its reader, or failed. */
export type BodyEnd = { kind: 'done' } | { kind: 'cancelled' } | { kind: 'error'; error: SandboxError };

/**
 * The host's side of a response body that a sandbox transferred.
 *
 * The transferred stream is the app's to feed, so this wrapper checks each chunk is bytes, pulls
 * only when its own reader asks (high-water mark 0: one chunk in flight, whatever the body's
 * size), and can be failed from outside: a transferred stream whose worker was terminated never
 * settles, so a recycled sandbox errors its bodies here instead.
 */
export class ResponseBodyGuard {
  readonly stream: ReadableStream<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<unknown>;
  readonly #onEnd: (end: BodyEnd) => void;
  #controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  #over = false;

  constructor(source: ReadableStream<unknown>, onEnd: (end: BodyEnd) => void) {
    this.#reader = source.getReader();
    this.#onEnd = onEnd;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: (controller) => this.#pull(controller),
        cancel: (reason) => {
          if (this.#over) return;
          this.#over = true;
          void this.#reader.cancel(reason).catch(() => {});
          this.#onEnd({ kind: 'cancelled' });
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** Errors the body with `error` (recycle, abort); no end is reported. Idempotent. */
  fail(error: unknown): void {
    if (this.#over) return;
    this.#over = true;
    this.#controller?.error(error);
    void this.#reader.cancel(error).catch(() => {});
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    let result: ReadableStreamReadResult<unknown>;
    try {
      result = await this.#reader.read();
    } catch (err) {
      return this.#failWith(new SandboxError('HOST_HANDLER_ERROR', `the response body failed: ${describeError(err)}`));
    }
    if (this.#over) return;
    if (result.done) {
      this.#over = true;
      controller.close();
      return this.#onEnd({ kind: 'done' });
    }
    const chunk = result.value;
    if (!(chunk instanceof Uint8Array)) {
      const what = chunk === null ? 'null' : typeof chunk === 'object' ? ((chunk as object).constructor?.name ?? 'object') : typeof chunk;
      return this.#failWith(new SandboxError('HOST_BAD_HANDLER_RESPONSE', `a response body chunk was ${what}, not a Uint8Array`));
    }
    controller.enqueue(chunk);
  }

  #failWith(error: SandboxError): void {
    if (this.#over) return;
    this.fail(error);
    this.#onEnd({ kind: 'error', error });
  }
}
