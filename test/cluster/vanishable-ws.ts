/**
 * A `ws` WebSocket for SignalingClients under test whose `close()` can be turned into a silent
 * destroy (no close frame: a crashed machine), and a way to get at the socket a client made.
 */
import { WebSocket } from 'ws';

export class VanishableWebSocket extends WebSocket {
  /** When set, close() destroys the socket without a close frame. */
  vanish = false;
  override close(code?: number, reason?: string): void {
    if (this.vanish) this.terminate();
    else super.close(code, reason);
  }
}

/** A WebSocketImpl for one client that remembers the latest socket it made. */
export function capturingWebSocket(): { Impl: new (url: string) => VanishableWebSocket; current: () => VanishableWebSocket | null } {
  let socket: VanishableWebSocket | null = null;
  const Impl = class extends VanishableWebSocket {
    constructor(url: string) {
      super(url);
      socket = this;
    }
  };
  return { Impl, current: () => socket };
}
