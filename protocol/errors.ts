/**
 * The one registry of dcdn error codes.
 *
 * Codes travel on the wire (reset and error frames) and reach HTTP clients in the `dcdn-error`
 * header and the JSON error body, so they are stable: add codes, never rename them. Messages are
 * for people and may change. Every code here is documented in docs/errors.md; a test keeps the
 * two in step. The mapping from a failure to its HTTP status lives here and nowhere else.
 *
 * Match on `code`, not `instanceof`: the browser bundle and Node hold separate copies of this
 * module.
 */
export const ERRORS = {
  // Wire protocol: what a peer did wrong on the channel.
  PROTO_DECODE: { status: 502, summary: 'a message could not be decoded as msgpack frames' },
  PROTO_FRAME_INVALID: { status: 502, summary: 'a frame had the wrong shape or field types' },
  PROTO_MESSAGE_TOO_LARGE: { status: 502, summary: 'a message or frame exceeded the negotiated size' },
  PROTO_STREAM_STATE: { status: 502, summary: 'a frame was not allowed in the state of its stream' },
  PROTO_FLOW_CONTROL: { status: 502, summary: 'a peer sent more body bytes than it had credit for' },
  PROTO_VERSION: { status: 502, summary: 'the peer speaks an incompatible protocol version' },
  PROTO_TOO_MANY_STREAMS: { status: 503, summary: 'the peer refused a stream over its concurrency limit' },
  PROTO_SESSION_CLOSED: { status: 502, summary: 'the channel closed while the stream was open' },
  PROTO_HEARTBEAT_TIMEOUT: { status: 502, summary: 'the peer stopped answering heartbeats' },
  PROTO_CANCELLED: { status: 499, summary: 'the stream was cancelled by the side that opened it' },

  // Ingress: decided at the HTTP edge.
  INGRESS_NO_HOST: { status: 503, summary: 'no healthy host is connected' },
  INGRESS_HOSTS_BUSY: { status: 503, summary: 'every host is at its concurrency limit' },
  INGRESS_SHUTTING_DOWN: { status: 503, summary: 'the ingress is draining and accepts no new requests' },
  INGRESS_HEAD_TIMEOUT: { status: 504, summary: 'the host sent no response head within the head timeout' },
  INGRESS_IDLE_TIMEOUT: { status: 504, summary: 'the response body stalled longer than the idle timeout' },
  INGRESS_HOST_LOST: { status: 502, summary: 'the host went away before the response head' },
  INGRESS_BAD_RESPONSE: { status: 502, summary: 'the host answered with an invalid status, header or body length' },
  INGRESS_BAD_REQUEST: { status: 400, summary: 'the request was malformed' },
  INGRESS_REQUEST_TIMEOUT: { status: 408, summary: 'the client sent its request too slowly' },
  INGRESS_BODY_TOO_LARGE: { status: 413, summary: 'the request body exceeded the configured limit' },
  INGRESS_URL_TOO_LONG: { status: 414, summary: 'the request URL exceeded the configured limit' },
  INGRESS_HEADERS_TOO_LARGE: { status: 431, summary: 'the request headers exceeded the configured limit' },
  INGRESS_NOT_FOUND: { status: 404, summary: 'no such ingress endpoint' },

  // Host: the browser tab and the handler in it.
  HOST_HANDLER_ERROR: { status: 502, summary: "the app's handler threw or rejected" },
  HOST_BAD_HANDLER_RESPONSE: { status: 502, summary: "the app's handler returned something other than a Response" },
  HOST_NO_APP: { status: 503, summary: 'the host has no app loaded' },
  HOST_OVERLOADED: { status: 503, summary: 'the host refused the request over its concurrency limit' },
  HOST_BROWSER_NOT_FOUND: { status: 500, summary: 'no Chromium or Chrome executable was found to launch hosts' },

  // Signaling: the control plane.
  SIG_TOKEN_MISSING: { status: 401, summary: 'the signaling request carried no token' },
  SIG_TOKEN_INVALID: { status: 401, summary: 'the token was malformed or its signature did not match' },
  SIG_TOKEN_EXPIRED: { status: 401, summary: 'the token has expired' },
  SIG_TOKEN_SCOPE: { status: 403, summary: 'the token does not grant this role or scope' },
  SIG_BAD_MESSAGE: { status: 400, summary: 'a signaling message was not valid JSON of a known shape' },
  SIG_MESSAGE_TOO_LARGE: { status: 413, summary: 'a signaling message exceeded the size limit' },
  SIG_RATE_LIMITED: { status: 429, summary: 'a signaling connection sent messages too fast' },
  SIG_UNKNOWN_PEER: { status: 404, summary: 'a signal was addressed to a peer that is not connected' },
  SIG_HELLO_TIMEOUT: { status: 408, summary: 'a signaling client did not introduce itself in time' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Whether `code` is one of ours (codes from a peer are untrusted strings). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, code);
}

/** The HTTP status an error code maps to. */
export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}

/**
 * An error with a stable code. Thrown across the project; serialised as `{code, message}`.
 *
 * @example
 * ```ts
 * throw new DcdnError('INGRESS_NO_HOST', 'no host serves this app');
 * ```
 */
export class DcdnError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string = ERRORS[code].summary, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DcdnError';
    this.code = code;
    this.status = ERRORS[code].status;
  }
}

/** Reads the code of any thrown value that carries one of ours, else undefined. */
export function errorCodeOf(err: unknown): ErrorCode | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return isErrorCode(code) ? code : undefined;
}
