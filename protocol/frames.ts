/**
 * The frames of the dcdn wire protocol, version 3 (version 2 without WS_*, version 1 without LOG; see
 * {@link MIN_PROTOCOL_VERSION}).
 *
 * Every frame is a msgpack array whose first element is the frame type and whose second is the
 * stream id (0 for frames about the whole session). One channel message carries one or more
 * frames packed back to back: the sender coalesces whatever is ready in the same tick, because
 * per-message cost dominates on werift (see docs/protocol.md).
 *
 * Streams follow HTTP/2's rules (RFC 9113 §5.1.1): the ingress (the "client" side) opens odd
 * ids, a host (the "server" side) opens even ids, and ids only grow. A stream carries one
 * request from its opener and one response from its acceptor.
 *
 * | type | name      | fields after [type, streamId]                          |
 * |------|-----------|--------------------------------------------------------|
 * | 0    | HELLO     | version, receiveWindow, agent                          |
 * | 1    | REQ_HEAD  | method, url, headers (flat name/value list), endStream, app |
 * | 2    | REQ_BODY  | bytes                                                  |
 * | 3    | REQ_END   |                                                        |
 * | 4    | RES_HEAD  | status, headers (flat name/value list), endStream      |
 * | 5    | RES_BODY  | bytes                                                  |
 * | 6    | RES_END   |                                                        |
 * | 7    | RESET     | code, message                                          |
 * | 8    | ERROR     | code, message (session-level, sent before closing)    |
 * | 9    | CREDIT    | bytes (receive window handed back to the sender)       |
 * | 10   | PING      | nonce                                                  |
 * | 11   | PONG      | nonce                                                  |
 * | 12   | LOG       | requestId, level, text, cutLines, cutBytes (v2; host → ingress, stream 0) |
 * | 13   | WS_DATA   | flags (bit 0 binary, bit 1 fin), bytes (v3; a WebSocket message or a piece of one) |
 * | 14   | WS_CLOSE  | code (0: none), reason (v3; this side closes its WebSocket)   |
 * | 15   | reserved  | WebSocket (v3)                                          |
 * | 16   | TIMING    | received, toSandbox, handlerStart, handlerHead, headInPage, sent (v3; host → ingress, on the stream) |
 * | 17   | TIMING_ASK |                                                       (v3; ingress → host, on the stream) |
 *
 * TIMING_ASK follows a REQ_HEAD (in the same message) when the ingress wants that request's
 * hop timestamps; the host then sends TIMING on the stream just before its RES_HEAD. Requests
 * not asked for carry neither frame, so the hot path pays nothing (docs/performance.md,
 * "Waterfall").
 */
export const PROTOCOL_VERSION = 3;
/**
 * The oldest version this side still speaks. A session runs at the lower of the two versions
 * in the HELLOs: a peer newer than this side is accepted (from version 3 on; a version-1 or -2
 * peer still refuses a newer HELLO, so with those in the network upgrade ingresses before
 * hosts). Frames of a version are only sent when the session runs at it or above: LOG at 2.
 */
export const MIN_PROTOCOL_VERSION = 1;
/** The first version with LOG frames. */
export const LOG_FRAME_VERSION = 2;
/** The first version with WebSocket frames (WS_DATA, WS_CLOSE): see docs/protocol.md. */
export const WS_FRAME_VERSION = 3;
/** The first version with TIMING and TIMING_ASK frames. */
export const TIMING_FRAME_VERSION = 3;

export const FrameType = {
  HELLO: 0,
  REQ_HEAD: 1,
  REQ_BODY: 2,
  REQ_END: 3,
  RES_HEAD: 4,
  RES_BODY: 5,
  RES_END: 6,
  RESET: 7,
  ERROR: 8,
  CREDIT: 9,
  PING: 10,
  PONG: 11,
  LOG: 12,
  WS_DATA: 13,
  WS_CLOSE: 14,
  TIMING: 16,
  TIMING_ASK: 17,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Headers in order, repeated names kept: `[['set-cookie', 'a=1'], ['set-cookie', 'b=2']]`. */
export type HeaderList = Array<[name: string, value: string]>;

export interface HelloFrame {
  type: typeof FrameType.HELLO;
  stream: 0;
  version: number;
  /** Bytes of body the sender will accept per stream before it hands back credit. */
  receiveWindow: number;
  /** Free text naming the peer's software, for logs. */
  agent: string;
}
export interface RequestHeadFrame {
  type: typeof FrameType.REQ_HEAD;
  stream: number;
  method: string;
  url: string;
  headers: HeaderList;
  endStream: boolean;
  /** The deployed app the request is for; '' when the host serves a single app. */
  app: string;
}
export interface ResponseHeadFrame {
  type: typeof FrameType.RES_HEAD;
  stream: number;
  status: number;
  headers: HeaderList;
  endStream: boolean;
}
export interface BodyFrame {
  type: typeof FrameType.REQ_BODY | typeof FrameType.RES_BODY;
  stream: number;
  data: Uint8Array;
}
export interface EndFrame {
  type: typeof FrameType.REQ_END | typeof FrameType.RES_END;
  stream: number;
}
export interface ResetFrame {
  type: typeof FrameType.RESET;
  stream: number;
  code: string;
  message: string;
}
export interface ErrorFrame {
  type: typeof FrameType.ERROR;
  stream: 0;
  code: string;
  message: string;
}
export interface CreditFrame {
  type: typeof FrameType.CREDIT;
  stream: number;
  bytes: number;
}
export interface PingFrame {
  type: typeof FrameType.PING | typeof FrameType.PONG;
  stream: 0;
  nonce: number;
}

/**
 * A line of a handler's `console.*` output, or an uncaught exception, belonging to the request
 * with the ingress-given id `requestId` (the `dcdn-request-id` the handler's Request carried).
 * Session-level (stream 0), not on the request's stream: a handler's `ctx.waitUntil()` work may
 * log after the response ended and the stream is gone, and the line must still reach
 * `dcdn tail` under the request's id. Level `cut` carries no text: it says how many lines and
 * bytes of that request the host dropped over its per-request limits (console-log.ts).
 */
export interface LogFrame {
  type: typeof FrameType.LOG;
  stream: 0;
  requestId: string;
  level: LogLevel;
  text: string;
  cutLines: number;
  cutBytes: number;
}

/**
 * A WebSocket message, or a piece of one, on a stream whose response head was 101 (either
 * direction). A message larger than what fits one channel message, or than the sender's credit,
 * is cut into pieces; `fin` marks its last. The bytes count against the stream's credit window
 * exactly as body bytes do. Text messages carry UTF-8.
 */
export interface WsDataFrame {
  type: typeof FrameType.WS_DATA;
  stream: number;
  binary: boolean;
  fin: boolean;
  data: Uint8Array;
}

/**
 * This side closes its WebSocket (RFC 6455 §5.5.1): `code` 0 stands for "no code" (1005 at the
 * client); the reason is at most {@link LIMITS.wsReasonLength} characters. Once each side has
 * sent one the stream is over.
 */
export interface WsCloseFrame {
  type: typeof FrameType.WS_CLOSE;
  stream: number;
  code: number;
  reason: string;
}

/** WS_DATA flag bits. */
export const WS_BINARY = 1;
export const WS_FIN = 2;

/** What a LOG frame's level may be: the console methods, `exception`, and `cut` (see {@link LogFrame}). */
export const LOG_LEVELS = ['log', 'info', 'warn', 'error', 'debug', 'exception', 'cut'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Where a timed request was on the host, each on the host page's clock as
 * `performance.timeOrigin + performance.now()` in ms (fractions kept); 0 where the host does
 * not know (a runtime without a sandbox has no handler stamps of its own). The ingress turns
 * these into segments with its clock-offset estimate (clock-offset.ts, waterfall.ts).
 */
export interface HostTimes {
  /** The REQ_HEAD reached the page's session. */
  received: number;
  /** The page handed the request to the app's sandbox (posted it to the worker). */
  toSandbox: number;
  /** The app's `fetch()` was called, in the worker (same time base, another realm). */
  handlerStart: number;
  /** The app's `fetch()` resolved with its Response, in the worker: the handler's first byte out. */
  handlerHead: number;
  /** The head came back into the page. */
  headInPage: number;
  /** The page queued RES_HEAD on the session (sent at the end of that turn). */
  sent: number;
}

/** The fields of a TIMING frame, in wire order. */
export const HOST_TIME_FIELDS = ['received', 'toSandbox', 'handlerStart', 'handlerHead', 'headInPage', 'sent'] as const;

export interface TimingFrame extends HostTimes {
  type: typeof FrameType.TIMING;
  stream: number;
}
export interface TimingAskFrame {
  type: typeof FrameType.TIMING_ASK;
  stream: number;
}

export type Frame =
  | HelloFrame
  | RequestHeadFrame
  | ResponseHeadFrame
  | BodyFrame
  | EndFrame
  | ResetFrame
  | ErrorFrame
  | CreditFrame
  | PingFrame
  | LogFrame
  | WsDataFrame
  | WsCloseFrame
  | TimingFrame
  | TimingAskFrame;

/** Limits the decoder enforces on hostile input, beyond the channel's message size. */
export const LIMITS = {
  /** Longest method token. */
  methodLength: 32,
  /** Longest URL (path and query) carried in a request head. */
  urlLength: 16 * 1024,
  /** Most header lines in one head. */
  headerCount: 256,
  /** Longest header name or value. */
  headerLength: 16 * 1024,
  /**
   * Largest total of a head's URL and header names and values, in characters. 64 K characters
   * encode to at most 192 KiB of UTF-8 plus framing, so a head always fits one 256 KiB message.
   */
  headBytes: 64 * 1024,
  /** Longest error code and message in RESET/ERROR frames. */
  codeLength: 64,
  messageLength: 1024,
  agentLength: 256,
  /** Longest app name (a DNS label). */
  appLength: 63,
  /** Longest request id in a LOG frame (the ingress's are 32 hex digits). */
  requestIdLength: 64,
  /** Longest text of one LOG frame, in characters (console-log.ts cuts lines to fit). */
  logTextLength: 8 * 1024,
  /**
   * Longest WS_CLOSE reason, in characters: RFC 6455 §5.5 allows 123 bytes after the code, so a
   * longer one could not reach a client anyway.
   */
  wsReasonLength: 123,
  /** Largest WS_CLOSE code (RFC 6455 §7.4: 0-4999; 0 here means none). */
  wsMaxCode: 4999,
  /** Largest stream id (2^31 - 1, as HTTP/2). */
  maxStreamId: 0x7fffffff,
  /** Largest window or credit increment (2^31 - 1). */
  maxWindow: 0x7fffffff,
} as const;

/**
 * Bytes a body frame adds around its payload: fixarray, type, a stream id of up to 5 bytes and
 * a bin32 header. Chunks are cut so that a whole frame fits in one channel message.
 */
export const BODY_FRAME_OVERHEAD = 1 + 1 + 5 + 5;
/** As {@link BODY_FRAME_OVERHEAD}, for WS_DATA: one byte more for the flags. */
export const WS_DATA_FRAME_OVERHEAD = BODY_FRAME_OVERHEAD + 1;
