// In a module of its own so that `dcdn --help` can print them without loading ws (cli-lazy).

/** Named limits of WebSockets to handlers; see docs/ingress.md. */
export interface WsGatewayOptions {
  /** No message either way for this long closes the socket with 1001. Default 300000 ms. */
  idleTimeoutMs: number;
  /** Largest message either way; a larger one closes the socket with 1009. Default 1 MiB. */
  maxMessageBytes: number;
  /** Open sockets one host may carry; past it an upgrade goes elsewhere or gets 503. Default 512. */
  maxPerHost: number;
  /** Bytes waiting for credit (per socket) past which the visitor's socket is paused. Default 256 KiB. */
  highWaterBytes: number;
  /** How long the host gets to answer a close before the stream is cancelled. Default 5000 ms. */
  closeGraceMs: number;
}

export const WS_GATEWAY_DEFAULTS: WsGatewayOptions = {
  idleTimeoutMs: 300_000,
  maxMessageBytes: 1024 * 1024,
  maxPerHost: 512,
  highWaterBytes: 256 * 1024,
  closeGraceMs: 5_000,
};

