import type { Channel } from './channel.ts';

/** Options for {@link createMemoryChannelPair}. */
export interface MemoryChannelOptions {
  /** Largest message either end accepts (default 65536, werift's default). */
  maxMessageSize?: number;
}

/**
 * One end of an in-memory channel pair: for tests that must inject faults precisely. Messages
 * are delivered in order, one per macrotask, so `bufferedAmount` and `ondrain` behave like a
 * real transport's; `pause()` stops delivery to simulate a stalled peer.
 */
export class MemoryChannel implements Channel {
  readonly maxMessageSize: number;
  lowWaterMark = 0;
  onmessage: ((data: Uint8Array) => void) | null = null;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;
  /** Sees each message before delivery; return a replacement, or null to drop it. */
  intercept: ((data: Uint8Array) => Uint8Array | null) | null = null;
  /** Messages this end has sent, for assertions about coalescing. */
  messagesSent = 0;

  #peer!: MemoryChannel;
  #queue: Uint8Array[] = [];
  #buffered = 0;
  #paused = false;
  #scheduled = false;
  #open = true;

  constructor(maxMessageSize: number) {
    this.maxMessageSize = maxMessageSize;
  }

  /** @internal */
  link(peer: MemoryChannel): void {
    this.#peer = peer;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  send(data: Uint8Array): void {
    if (!this.#open) throw new Error('MemoryChannel: send on a closed channel');
    if (data.byteLength > this.maxMessageSize) {
      throw new Error(`MemoryChannel: message of ${data.byteLength} bytes exceeds ${this.maxMessageSize}`);
    }
    this.messagesSent++;
    // Copy, as a real transport would: the sender may reuse its buffer.
    this.#queue.push(data.slice());
    this.#buffered += data.byteLength;
    this.#schedule();
  }

  /** Stops delivering this end's messages (they pile up in `bufferedAmount`). */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#schedule();
  }

  close(reason = 'closed'): void {
    if (!this.#open) return;
    this.#shut(reason);
    this.#peer.#shut(reason);
  }

  #shut(reason: string): void {
    if (!this.#open) return;
    this.#open = false;
    this.#queue = [];
    this.#buffered = 0;
    setTimeout(() => this.onclose?.(reason), 0);
  }

  #schedule(): void {
    if (this.#scheduled || this.#paused) return;
    this.#scheduled = true;
    setTimeout(() => this.#deliverOne(), 0);
  }

  #deliverOne(): void {
    this.#scheduled = false;
    if (this.#paused || !this.#open) return;
    const msg = this.#queue.shift();
    if (!msg) return;
    const before = this.#buffered;
    this.#buffered -= msg.byteLength;
    const delivered = this.intercept ? this.intercept(msg) : msg;
    if (delivered && this.#peer.#open) this.#peer.onmessage?.(delivered);
    if (before > this.lowWaterMark && this.#buffered <= this.lowWaterMark) this.ondrain?.();
    if (this.#queue.length > 0) this.#schedule();
  }
}

/**
 * Two connected in-memory channels.
 *
 * @example
 * ```ts
 * const [ingressEnd, hostEnd] = createMemoryChannelPair({ maxMessageSize: 16384 });
 * ```
 */
export function createMemoryChannelPair(options: MemoryChannelOptions = {}): [MemoryChannel, MemoryChannel] {
  const size = options.maxMessageSize ?? 65536;
  const a = new MemoryChannel(size);
  const b = new MemoryChannel(size);
  a.link(b);
  b.link(a);
  return [a, b];
}
