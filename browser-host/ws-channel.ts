import type { Channel } from '../protocol/index.ts';

/** How often to look at `bufferedAmount` while above the low-water mark: browsers fire no drain event. */
const DRAIN_POLL_MS = 4;

/**
 * A {@link Channel} over the browser's WebSocket: the fallback transport, and the baseline the
 * data channel is measured against.
 */
export class BrowserWebSocketChannel implements Channel {
  readonly maxMessageSize: number;
  lowWaterMark = 0;
  onmessage: ((data: Uint8Array) => void) | null = null;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;

  readonly #ws: WebSocket;
  #closed = false;
  #polling: ReturnType<typeof setTimeout> | undefined;

  constructor(ws: WebSocket, maxMessageSize: number) {
    this.#ws = ws;
    this.maxMessageSize = maxMessageSize;
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (e: MessageEvent) => {
      if (!(e.data instanceof ArrayBuffer)) return this.close('text message on a binary channel');
      this.onmessage?.(new Uint8Array(e.data));
    });
    ws.addEventListener('close', (e: CloseEvent) => this.#closedBy(`websocket closed (${e.code}${e.reason ? ` ${e.reason}` : ''})`));
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  get isOpen(): boolean {
    return !this.#closed && this.#ws.readyState === WebSocket.OPEN;
  }

  send(data: Uint8Array): void {
    if (!this.isOpen) throw new Error('BrowserWebSocketChannel: send on a closed channel');
    if (data.byteLength > this.maxMessageSize) {
      throw new Error(`BrowserWebSocketChannel: message of ${data.byteLength} bytes exceeds ${this.maxMessageSize}`);
    }
    this.#ws.send(data);
    if (this.#ws.bufferedAmount > this.lowWaterMark && this.#polling === undefined) this.#poll();
  }

  #poll(): void {
    this.#polling = setTimeout(() => {
      this.#polling = undefined;
      if (this.#closed) return;
      if (this.#ws.bufferedAmount <= this.lowWaterMark) this.ondrain?.();
      else this.#poll();
    }, DRAIN_POLL_MS);
  }

  close(reason = 'closed'): void {
    if (this.#closed) return;
    this.#ws.close(1000, reason.slice(0, 120));
    this.#closedBy(reason);
  }

  #closedBy(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#polling);
    this.onclose?.(reason);
  }
}
