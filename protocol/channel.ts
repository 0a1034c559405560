/**
 * The transport-neutral message channel that the multiplexer runs over.
 *
 * A `Channel` carries whole binary messages, reliably and in order: a WebRTC data channel
 * (werift on Node, the native `RTCDataChannel` in a tab) or a WebSocket. Adapters live with
 * their runtime (`ingress/`, `browser-host/`); this file knows none of them.
 *
 * Backpressure is the adapter's duty to report, never to enforce: `send()` must not block or
 * throw for a full queue (werift queues without limit, Chromium throws at ~16 MiB), so the
 * multiplexer watches `bufferedAmount` and waits for `ondrain` before it sends more.
 *
 * @example
 * ```ts
 * const [a, b] = createMemoryChannelPair();
 * b.onmessage = (data) => console.log(data.byteLength);
 * a.send(new Uint8Array([1, 2, 3]));
 * ```
 */
export interface Channel {
  /** Largest message `send()` accepts, in bytes, as negotiated by the transport. */
  readonly maxMessageSize: number;
  /** Bytes queued by `send()` and not yet handed to the network. */
  readonly bufferedAmount: number;
  /**
   * When `bufferedAmount` falls to or below this many bytes after having been above it, the
   * channel calls `ondrain`. Settable, like `RTCDataChannel.bufferedAmountLowThreshold`.
   */
  lowWaterMark: number;
  /** Whether the channel can still send. */
  readonly isOpen: boolean;
  /** Queues one whole message. Throws only for a message above `maxMessageSize` or after close. */
  send(data: Uint8Array): void;
  /** Closes the channel; `onclose` fires once, whichever side closed it. */
  close(reason?: string): void;
  /** One whole message arrived. The view may be reused by the transport after the call. */
  onmessage: ((data: Uint8Array) => void) | null;
  /** `bufferedAmount` fell to `lowWaterMark`. */
  ondrain: (() => void) | null;
  /** The channel closed, with a reason for logs when one is known. */
  onclose: ((reason: string) => void) | null;
}

/** The transports a session may run over; reported to clients in `dcdn-transport`. */
export type TransportKind = 'webrtc' | 'websocket' | 'memory';
