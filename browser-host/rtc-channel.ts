import type { Channel } from '../protocol/index.ts';
import { DcdnError } from '../protocol/index.ts';

/**
 * Max message size when the remote SDP carries no `a=max-message-size` (RFC 8841 section 6).
 */
const SCTP_DEFAULT_MAX_MESSAGE_SIZE = 65536;

/**
 * {@link Channel} over the browser's native `RTCDataChannel`. Runs in the page: it must not
 * import Node or werift (esbuild bundles it into the host page).
 *
 * `maxMessageSize` comes from `pc.sctp.maxMessageSize`, which Chromium sets to what the remote
 * SDP allows capped by its own limit (262144). `send()` checks it and the channel state itself,
 * because Chromium's own errors differ by version and a closed channel must never look open.
 *
 * @example
 * ```ts
 * const channel = new RtcChannel(event.channel, pc);
 * channel.onmessage = (bytes) => channel.send(bytes); // echo
 * ```
 */
export class RtcChannel implements Channel {
  onmessage: ((data: Uint8Array) => void) | null = null;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;

  readonly #dc: RTCDataChannel;
  readonly #pc: RTCPeerConnection | null;
  #maxMessageSize: number | null = null;
  #closed = false;

  constructor(dc: RTCDataChannel, pc: RTCPeerConnection | null = null) {
    this.#dc = dc;
    this.#pc = pc;
    dc.binaryType = 'arraybuffer';
    dc.addEventListener('message', (event: MessageEvent) => {
      const data: unknown = event.data;
      // The peer is expected to send binary only; a string would be a protocol bug on its side.
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new TextEncoder().encode(String(data));
      this.onmessage?.(bytes);
    });
    dc.addEventListener('bufferedamountlow', () => this.ondrain?.());
    dc.addEventListener('close', () => this.#finish('data channel closed'));
    dc.addEventListener('error', (event) => {
      const error = (event as RTCErrorEvent).error as Partial<RTCError> | undefined;
      const cause = error?.sctpCauseCode != null ? ` (SCTP cause ${error.sctpCauseCode})` : '';
      this.#finish(`data channel error: ${error?.errorDetail ?? 'unknown'}${cause}${error?.message ? `: ${error.message}` : ''}`);
    });
    pc?.addEventListener('connectionstatechange', () => {
      const state = pc.connectionState;
      if (state === 'failed' || state === 'closed') this.#finish(`peer connection ${state}`);
    });
    if (dc.readyState === 'closing' || dc.readyState === 'closed') this.#closed = true;
  }

  get maxMessageSize(): number {
    // Read once the transport exists; it does not change for the life of the association.
    if (this.#maxMessageSize === null) {
      const size = this.#pc?.sctp?.maxMessageSize;
      if (size === undefined) return SCTP_DEFAULT_MAX_MESSAGE_SIZE;
      // 0 and Infinity both mean "no limit" to the spec; our frames never need more than this.
      this.#maxMessageSize = size > 0 && Number.isFinite(size) ? size : 262144;
    }
    return this.#maxMessageSize;
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
    // Chromium copies on send, so a view into a larger buffer is fine.
    this.#dc.send(data as Uint8Array<ArrayBuffer>);
  }

  close(reason = 'closed locally'): void {
    if (this.#closed) return;
    this.#finish(reason);
    this.#dc.close();
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onclose?.(reason);
  }
}
