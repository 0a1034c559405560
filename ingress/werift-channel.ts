import { EarlyMessages } from '../protocol/index.ts';
import type { RTCDataChannel, RTCPeerConnection } from 'werift';
import type { Channel } from '../protocol/index.ts';
import { DcdnError } from '../protocol/index.ts';

export interface WeriftChannelOptions {
  /** The negotiated size: min of ours and the remote SDP's `a=max-message-size` (see rtc-peer). */
  maxMessageSize: number;
  /**
   * The connection that carries only this channel. Its `failed`/`closed` states close the
   * channel, and closing the channel closes it: an SCTP ABORT reaches the tab at once, where
   * werift's stream-reset close procedure took over 5 s to be answered on a loaded machine.
   */
  pc?: RTCPeerConnection;
}

/**
 * {@link Channel} over a werift `RTCDataChannel`, papering over werift's gaps (WEBRTC-NOTES 2-3):
 * `send()` on a closed channel silently queues there, so it throws here; `onerror` never fires
 * there, so the peer connection's `failed`/`closed` states count as a close; `onclose` fires once
 * whichever of those comes first.
 *
 * werift still learns about a dead tab only after ~30 s (consent freshness); the multiplexer's
 * heartbeat is the fast detector.
 *
 * @example
 * ```ts
 * const channel = await offerer.opened; // a WeriftChannel
 * channel.lowWaterMark = 256 * 1024;
 * channel.ondrain = () => pump();
 * ```
 */
export class WeriftChannel implements Channel {
  readonly maxMessageSize: number;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;

  readonly #dc: RTCDataChannel;
  readonly #pc: RTCPeerConnection | undefined;
  readonly #unsubscribe: Array<() => void> = [];
  #closed = false;
  /** The host may speak first: what it sends before the session listens is kept for it. */
  readonly #early = new EarlyMessages((reason) => this.#finish(reason));
  get onmessage(): ((data: Uint8Array) => void) | null {
    return this.#early.listener;
  }
  set onmessage(fn: ((data: Uint8Array) => void) | null) {
    this.#early.listener = fn;
  }

  constructor(dc: RTCDataChannel, options: WeriftChannelOptions) {
    this.#dc = dc;
    this.#pc = options.pc;
    this.maxMessageSize = options.maxMessageSize;
    const subscriptions = [
      dc.onMessage.subscribe((data) => {
        // A Buffer is a Uint8Array: no copy. Strings are not part of our protocol, but a
        // misbehaving peer may send one; hand it on as bytes for the decoder to reject.
        this.#early.deliver(typeof data === 'string' ? Buffer.from(data) : data);
      }),
      // Verified against Chromium in test/webrtc-channel.e2e.test.ts: fires when bufferedAmount
      // crosses bufferedAmountLowThreshold downwards (the `onbufferedamountlow` property does not exist).
      dc.bufferedAmountLow.subscribe(() => this.ondrain?.()),
      dc.stateChanged.subscribe((state) => {
        if (state === 'closed' || state === 'closing') this.#finish(`data channel ${state}`);
      }),
    ];
    if (options.pc) {
      const pc = options.pc;
      subscriptions.push(
        pc.connectionStateChange.subscribe((state) => {
          if (state === 'failed' || state === 'closed') this.#finish(`peer connection ${state}`);
        }),
      );
    }
    for (const s of subscriptions) this.#unsubscribe.push(() => s.unSubscribe());
    if (dc.readyState === 'closing' || dc.readyState === 'closed') this.#closed = true;
  }

  get bufferedAmount(): number {
    return this.#dc.bufferedAmount;
  }

  get lowWaterMark(): number {
    return this.#dc.bufferedAmountLowThreshold;
  }

  set lowWaterMark(bytes: number) {
    this.#dc.bufferedAmountLowThreshold = bytes;
  }

  get isOpen(): boolean {
    return !this.#closed && this.#dc.readyState === 'open';
  }

  send(data: Uint8Array): void {
    if (!this.isOpen) {
      throw new DcdnError('PROTO_SESSION_CLOSED', `send on a data channel that is ${this.#closed ? 'closed' : this.#dc.readyState}`);
    }
    if (data.byteLength > this.maxMessageSize) {
      throw new DcdnError('PROTO_MESSAGE_TOO_LARGE', `message of ${data.byteLength} bytes exceeds ${this.maxMessageSize}`);
    }
    if (data.byteLength === 0) {
      // werift splits a message into ceil(length / chunk) DATA chunks: zero chunks for an empty
      // one, yet it still consumes a stream sequence number, which stalls ordered delivery.
      throw new DcdnError('PROTO_FRAME_INVALID', 'empty messages cannot be sent over werift');
    }
    // werift keeps a Buffer it is given (its SCTP chunks are views into it) and copies anything
    // else; copy exactly once so the caller may reuse its buffer, as with a browser channel.
    this.#dc.send(Buffer.copyBytesFrom(data));
  }

  close(reason = 'closed locally'): void {
    // #finish first: werift moves to 'closing' synchronously inside dc.close(), which would
    // otherwise be reported as the reason.
    this.#finish(reason);
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    if (this.#pc) void this.#pc.close();
    else if (this.#dc.readyState !== 'closed' && this.#dc.readyState !== 'closing') this.#dc.close();
    this.onclose?.(reason);
  }
}
