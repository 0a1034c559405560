import { DcdnError, errorCodeOf } from './errors.ts';
import type { Stream } from './stream.ts';

/**
 * The body arriving on `stream` as an async iterable of chunks. Credit for a chunk goes back to
 * the sender when the consumer asks for the next one, so the sender runs at the consumer's pace
 * and at most one receive window is ever held here. Ends when the peer ends its body; throws a
 * DcdnError when the stream is reset (the peer's code when it is one of ours, else
 * PROTO_CANCELLED). A consumer that stops early must reset or answer the stream itself, with
 * the code that says why (the sender is otherwise left waiting for credit).
 *
 * Takes over the stream's `ondata`, `onend` and `onreset`.
 */
export function streamBody(stream: Stream): AsyncIterableIterator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let ended = false;
  let failure: DcdnError | null = null;
  let wake: (() => void) | null = null;
  let owed = 0;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  stream.ondata = (chunk) => {
    queue.push(chunk);
    notify();
  };
  stream.onend = () => {
    ended = true;
    notify();
  };
  stream.onreset = (err) => {
    failure = new DcdnError(errorCodeOf(err) ?? 'PROTO_CANCELLED', err.message || `stream reset: ${err.code}`);
    notify();
  };
  const iterator: AsyncIterableIterator<Uint8Array> = {
    async next() {
      if (owed > 0) {
        stream.consume(owed);
        owed = 0;
      }
      while (queue.length === 0 && !ended && !failure) await new Promise<void>((resolve) => (wake = resolve));
      const chunk = queue.shift();
      if (chunk) {
        owed = chunk.byteLength;
        return { value: chunk, done: false };
      }
      if (failure) throw failure;
      return { value: undefined, done: true };
    },
    async return() {
      queue.length = 0;
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
