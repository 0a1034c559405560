import type { WebSocket } from 'ws';
import { WS_MAX_MESSAGE_SIZE, type Channel } from '../protocol/index.ts';

/**
 * A {@link Channel} over a `ws` WebSocket on the ingress. `bufferedAmount` counts bytes handed
 * to `send()` whose write callback has not run yet, so `ondrain` fires exactly when the socket
 * has taken them, without polling.
 */
export class NodeWebSocketChannel implements Channel {
  readonly maxMessageSize: number;
  lowWaterMark = 0;
  onmessage: ((data: Uint8Array) => void) | null = null;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;

  readonly #ws: WebSocket;
  #pending = 0;
  #closed = false;

  constructor(ws: WebSocket, maxMessageSize = WS_MAX_MESSAGE_SIZE) {
    this.#ws = ws;
    this.maxMessageSize = maxMessageSize;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) return this.close('text message on a binary channel');
      this.onmessage?.(data);
    });
    ws.on('close', (code: number, reason: Buffer) => this.#closedBy(`websocket closed (${code}${reason.length ? ` ${reason}` : ''})`));
    ws.on('error', (err: Error) => this.#closedBy(`websocket error: ${err.message}`));
  }

  get bufferedAmount(): number {
    return this.#pending;
  }

  get isOpen(): boolean {
    return !this.#closed && this.#ws.readyState === this.#ws.OPEN;
  }

  send(data: Uint8Array): void {
    if (!this.isOpen) throw new Error('NodeWebSocketChannel: send on a closed channel');
    if (data.byteLength > this.maxMessageSize) {
      throw new Error(`NodeWebSocketChannel: message of ${data.byteLength} bytes exceeds ${this.maxMessageSize}`);
    }
    const n = data.byteLength;
    this.#pending += n;
    this.#ws.send(data, { binary: true }, () => {
      const before = this.#pending;
      this.#pending -= n;
      if (before > this.lowWaterMark && this.#pending <= this.lowWaterMark) this.ondrain?.();
    });
  }

  close(reason = 'closed'): void {
    if (this.#closed) return;
    this.#ws.close(1000, reason.slice(0, 120));
    // A peer that never completes the closing handshake must not hold the socket.
    setTimeout(() => this.#ws.terminate(), 2000).unref();
    this.#closedBy(reason);
  }

  #closedBy(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onclose?.(reason);
  }
}
