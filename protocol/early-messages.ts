/**
 * Messages a channel received before anyone listened. A transport may deliver the peer's first
 * messages (its HELLO) between "the channel is open" and the session attaching `onmessage`;
 * dropping them would make the session fail its handshake. They are kept, up to a bound, and
 * handed over in order when the listener arrives.
 */
export class EarlyMessages {
  #listener: ((data: Uint8Array) => void) | null = null;
  #queue: Uint8Array[] = [];
  #bytes = 0;

  /**
   * @param onOverflow called (once per refused message) when holding a message would pass
   *   `maxBytes`; the channel closes then, saying why.
   * @param maxBytes most bytes held for a listener that has not come yet (default 1 MiB).
   */
  constructor(
    readonly onOverflow: (reason: string) => void = () => {},
    readonly maxBytes = 1024 * 1024,
  ) {}

  get listener(): ((data: Uint8Array) => void) | null {
    return this.#listener;
  }

  /** Sets the listener and hands it what arrived before, in order. */
  set listener(fn: ((data: Uint8Array) => void) | null) {
    this.#listener = fn;
    while (fn && this.#listener === fn && this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      this.#bytes -= next.byteLength;
      fn(next);
    }
  }

  /** Delivers `data` now, or keeps it; false (and `onOverflow`) when keeping it would pass `maxBytes`. */
  deliver(data: Uint8Array): boolean {
    if (this.#listener) {
      this.#listener(data);
      return true;
    }
    if (this.#bytes + data.byteLength > this.maxBytes) {
      this.onOverflow(`the peer sent over ${this.maxBytes} bytes before the session started`);
      return false;
    }
    this.#queue.push(data);
    this.#bytes += data.byteLength;
    return true;
  }
}
