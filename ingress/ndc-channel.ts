import { EarlyMessages } from '../protocol/index.ts';
import type { Channel } from '../protocol/index.ts';
import { DcdnError } from '../protocol/index.ts';

/**
 * The part of node-datachannel's native `DataChannel` this adapter uses (node-datachannel 0.33,
 * libdatachannel 0.24). Declared here rather than imported so the ingress typechecks without the
 * optional dependency installed.
 */
export interface NdcDataChannel {
  sendMessageBinary(buffer: Uint8Array): boolean;
  isOpen(): boolean;
  bufferedAmount(): number;
  maxMessageSize(): number;
  setBufferedAmountLowThreshold(bytes: number): void;
  close(): void;
  onOpen(cb: () => void): void;
  onClosed(cb: () => void): void;
  onError(cb: (err: string) => void): void;
  onBufferedAmountLow(cb: () => void): void;
  onMessage(cb: (msg: string | Buffer | ArrayBuffer) => void): void;
}

/** What the channel needs of the peer connection that carries it (see ndc-peer.ts). */
export interface NdcPeerLink {
  /** Closes the whole peer connection. */
  close(): void;
  /** Calls `listener` on every connection state change; returns the unsubscribe function. */
  onState(listener: (state: string) => void): () => void;
}

export interface NdcChannelOptions {
  /** The negotiated size: min of ours and the remote SDP's `a=max-message-size` (see ndc-peer). */
  maxMessageSize: number;
  /**
   * The connection that carries only this channel. Its `failed`/`closed` states close the
   * channel, and closing the channel closes it, so the tab learns at once (SCTP ABORT).
   */
  peer?: NdcPeerLink;
}

/**
 * {@link Channel} over a node-datachannel (libdatachannel) `DataChannel`.
 *
 * libdatachannel runs its own threads; every callback reaches JavaScript through a N-API
 * thread-safe function, one event-loop task per event. So `bufferedAmount` (read synchronously
 * from the native queue) may fall below `lowWaterMark` a little before `ondrain` runs; the
 * multiplexer only ever waits on `ondrain` when it saw the amount above the mark, and each
 * downward crossing queues its own event, so no wake-up is lost.
 *
 * Same contract as `WeriftChannel`: binary messages only (a text message is a protocol violation
 * and closes the channel); `send()` throws `PROTO_SESSION_CLOSED` after close,
 * `PROTO_MESSAGE_TOO_LARGE` above `maxMessageSize` and `PROTO_FRAME_INVALID` for an empty
 * message; `onclose` fires exactly once.
 *
 * @example
 * ```ts
 * const channel = await offerer.opened; // an NdcChannel
 * channel.lowWaterMark = 256 * 1024;
 * channel.ondrain = () => pump();
 * ```
 */
export class NdcChannel implements Channel {
  /** Which WebRTC stack carries this channel, for logs, health and tests. */
  readonly backend = 'node-datachannel' as const;
  readonly maxMessageSize: number;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;

  readonly #dc: NdcDataChannel;
  readonly #peer: NdcPeerLink | undefined;
  readonly #unsubscribe: () => void;
  #lowWaterMark = 0;
  #closed = false;
  /** The host may speak first: what it sends before the session listens is kept for it. */
  readonly #early = new EarlyMessages((reason) => this.#finish(reason));
  get onmessage(): ((data: Uint8Array) => void) | null {
    return this.#early.listener;
  }
  set onmessage(fn: ((data: Uint8Array) => void) | null) {
    this.#early.listener = fn;
  }

  constructor(dc: NdcDataChannel, options: NdcChannelOptions) {
    this.#dc = dc;
    this.#peer = options.peer;
    this.maxMessageSize = options.maxMessageSize;
    // Each on*() replaces the native callback (one slot per event), taking over from the offerer.
    dc.onMessage((msg) => {
      if (this.#closed) return;
      // node-datachannel hands over a fresh Buffer per message (a copy out of libdatachannel),
      // so it is passed on without another copy.
      if (typeof msg === 'string') return this.#finish('received a text message; the protocol is binary only');
      this.#early.deliver(msg instanceof ArrayBuffer ? new Uint8Array(msg) : msg);
    });
    dc.onBufferedAmountLow(() => {
      if (!this.#closed) this.ondrain?.();
    });
    dc.onClosed(() => this.#finish('data channel closed'));
    dc.onError((err) => this.#finish(`data channel error: ${err}`));
    this.#unsubscribe =
      options.peer?.onState((state) => {
        if (state === 'failed' || state === 'closed') this.#finish(`peer connection ${state}`);
      }) ?? (() => {});
    // Built in the open callback, which runs a task after libdatachannel opened the channel: it
    // may have closed since, and that close event went to the offerer's callback, not ours.
    if (!dc.isOpen()) queueMicrotask(() => this.#finish('data channel closed before use'));
  }

  get bufferedAmount(): number {
    return this.#closed ? 0 : this.#dc.bufferedAmount();
  }

  get lowWaterMark(): number {
    return this.#lowWaterMark;
  }

  set lowWaterMark(bytes: number) {
    this.#lowWaterMark = bytes;
    if (!this.#closed) this.#dc.setBufferedAmountLowThreshold(bytes);
  }

  get isOpen(): boolean {
    return !this.#closed && this.#dc.isOpen();
  }

  send(data: Uint8Array): void {
    if (!this.isOpen) throw new DcdnError('PROTO_SESSION_CLOSED', 'send on a data channel that is closed');
    if (data.byteLength > this.maxMessageSize) {
      throw new DcdnError('PROTO_MESSAGE_TOO_LARGE', `message of ${data.byteLength} bytes exceeds ${this.maxMessageSize}`);
    }
    if (data.byteLength === 0) {
      // libdatachannel would send it (as PPID 57, "binary empty"), but werift cannot: keep one
      // contract for every backend so the multiplexer never depends on it.
      throw new DcdnError('PROTO_FRAME_INVALID', 'empty messages cannot be sent on a data channel');
    }
    try {
      // Copied synchronously into libdatachannel's queue: the caller may reuse its buffer.
      this.#dc.sendMessageBinary(data);
    } catch (error) {
      // The native side closed between our isOpen() check and the send: report it as closed.
      this.#finish(`send failed: ${(error as Error).message}`);
      throw new DcdnError('PROTO_SESSION_CLOSED', 'send on a data channel that is closed', { cause: error });
    }
  }

  close(reason = 'closed locally'): void {
    this.#finish(reason);
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    if (this.#peer) this.#peer.close();
    else this.#dc.close();
    this.onclose?.(reason);
  }
}
