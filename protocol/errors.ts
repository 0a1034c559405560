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
  PROTO_RATE_LIMITED: { status: 502, summary: 'the peer sent frames of one kind (PING, RESET, CREDIT, heads, ...) faster than its budget; the session was closed' },
  PROTO_SLOW_PEER: { status: 502, summary: 'the peer stopped reading: more than the outbound limit was queued for it, so the session was closed' },

  // Ingress: decided at the HTTP edge.
  INGRESS_NO_HOST: { status: 503, summary: 'no healthy host is connected' },
  INGRESS_HOSTS_BUSY: { status: 503, summary: 'every host is at its concurrency limit' },
  INGRESS_SHUTTING_DOWN: { status: 503, summary: 'the ingress is draining and accepts no new requests' },
  INGRESS_HEAD_TIMEOUT: { status: 504, summary: 'the host sent no response head within the head timeout' },
  INGRESS_IDLE_TIMEOUT: { status: 504, summary: 'the response body stalled longer than the idle timeout' },
  INGRESS_HOST_LOST: { status: 502, summary: 'the host went away before the response head' },
  INGRESS_BAD_RESPONSE: { status: 502, summary: 'the host answered with an invalid status, header or body length' },
  INGRESS_BAD_REQUEST: { status: 400, summary: 'the request was malformed' },
  INGRESS_BAD_HOST: { status: 400, summary: 'the Host header is not a valid authority (userinfo, a path or query, spaces, a bad port)' },
  INGRESS_REQUEST_TIMEOUT: { status: 408, summary: 'the client sent its request too slowly' },
  INGRESS_BODY_TOO_LARGE: { status: 413, summary: 'the request body exceeded the configured limit' },
  INGRESS_URL_TOO_LONG: { status: 414, summary: 'the request URL exceeded the configured limit' },
  INGRESS_HEADERS_TOO_LARGE: { status: 431, summary: 'the request headers exceeded the configured limit' },
  INGRESS_NOT_FOUND: { status: 404, summary: 'no such ingress endpoint' },
  INGRESS_UNKNOWN_APP: { status: 404, summary: 'no app is deployed under this hostname or path' },
  INGRESS_TICKET_INVALID: { status: 401, summary: 'a host dialled the WebSocket endpoint without a valid ticket' },
  INGRESS_NOT_IMPLEMENTED: { status: 501, summary: 'the ingress does not forward this kind of request (CONNECT, TRACE, an unknown method, a WebSocket upgrade to an app)' },
  INGRESS_EXPECTATION_FAILED: { status: 417, summary: 'the request carried an Expect value other than 100-continue' },
  INGRESS_INTERNAL_ERROR: { status: 500, summary: 'the ingress failed while answering the request (a bug: please report it)' },

  // Host: the browser tab and the handler in it.
  HOST_HANDLER_ERROR: { status: 502, summary: "the app's handler threw or rejected" },
  HOST_BAD_HANDLER_RESPONSE: { status: 502, summary: "the app's handler returned something other than a Response, or a head the wire cannot carry (too many or too long headers)" },
  HOST_NO_APP: { status: 503, summary: 'the host has no app loaded' },
  HOST_OVERLOADED: { status: 503, summary: 'the host refused the request over its concurrency limit' },
  HOST_HANDLER_TIMEOUT: { status: 504, summary: "the app's handler ran past its time limit; its sandbox was recycled" },
  HOST_SANDBOX_RECYCLED: { status: 503, summary: "the app's sandbox was restarted while the request was in it" },
  HOST_HANDLER_CPU_LIMIT: { status: 504, summary: "the app's worker ran JavaScript past its CPU limit without yielding; its sandbox was recycled" },
  HOST_SANDBOX_CRASHED: { status: 502, summary: "the app's sandbox process died (out of memory, killed) with the request in it" },
  HOST_APP_LOAD_FAILED: { status: 502, summary: 'the app module threw while loading, has no default fetch(), or did not start in time' },
  HOST_SANDBOX_CLOSED: { status: 503, summary: "the app's sandbox is draining or closed" },
  HOST_BROWSER_NOT_FOUND: { status: 500, summary: 'no Chromium or Chrome executable was found to launch hosts' },

  // Apps: the control API (deploy, rollback, secrets).
  APP_NOT_FOUND: { status: 404, summary: 'no app has this name' },
  APP_BAD_NAME: { status: 400, summary: 'app names are DNS labels: lowercase letters, digits and dashes' },
  APP_BAD_BUNDLE: { status: 400, summary: 'the bundle is empty, too large, not an ES module, or has no default export with fetch()' },
  APP_LOAD_FAILED: { status: 422, summary: 'a host could not load the new version (it threw, or has no fetch()), or none loaded it in time; the live version is unchanged' },
  APP_VERSION_NOT_FOUND: { status: 404, summary: 'the app has no such version' },
  APP_BAD_SECRET: { status: 400, summary: 'secret names are identifiers and values at most 5 KiB' },
  APP_BAD_CONFIG: { status: 400, summary: 'the deploy options (KV bindings, volunteers, required capabilities) are malformed or clash with a secret' },

  // KV: handlers' key-value bindings (env.NAME). The handler's call rejects with an Error whose
  // `code` is one of these; `dcdn kv` and the KV wire answer carry them too.
  KV_BAD_KEY: { status: 400, summary: 'keys are 1 to 512 bytes of UTF-8 and may not be "." or ".."' },
  KV_VALUE_TOO_LARGE: { status: 413, summary: 'the value is larger than the value limit (25 MiB by default)' },
  KV_METADATA_TOO_LARGE: { status: 413, summary: 'the metadata, serialised as JSON, is larger than 1 KiB or not JSON' },
  KV_BAD_EXPIRATION: { status: 400, summary: 'expiration and expirationTtl must be whole seconds at least the minimum TTL (60 s by default) from now' },
  KV_BAD_LIST: { status: 400, summary: 'list() takes a limit of 1 to 1000, a prefix within the key limit and a cursor it returned' },
  KV_BAD_REQUEST: { status: 400, summary: 'the KV operation was malformed' },
  KV_TIMEOUT: { status: 408, summary: 'the tab stalled while a value streamed (no chunk, or no credit) for the idle timeout' },
  KV_UNKNOWN_BINDING: { status: 404, summary: 'the app has no KV binding of this name in its deployed version' },
  KV_FORBIDDEN: { status: 403, summary: 'this host may not use the namespaces of the app it named' },
  KV_NOT_CONFIGURED: { status: 503, summary: 'the ingress that received the operation has no KV store' },
  KV_STORE_UNAVAILABLE: { status: 503, summary: 'the KV backend (SQLite file or Redis) failed or is unreachable' },

  // Signaling: the control plane. `closeCode` is the WebSocket close code (RFC 6455 §7.4.1)
  // used when the error ends a signaling connection.
  SIG_TOKEN_MISSING: { status: 401, summary: 'no token: pass ?token= or Authorization: Bearer' },
  SIG_TOKEN_INVALID: { status: 401, summary: 'the token is malformed or its signature does not match' },
  SIG_TOKEN_EXPIRED: { status: 401, summary: 'the token has expired' },
  SIG_TOKEN_SCOPE: { status: 403, summary: 'the token is valid but its role may not use this endpoint' },
  SIG_UPGRADE_REQUIRED: { status: 426, summary: 'this endpoint only speaks WebSocket' },
  SIG_BAD_MESSAGE: { status: 400, summary: 'the message is not valid JSON or not a known message shape', closeCode: 1008 },
  SIG_MESSAGE_TOO_LARGE: { status: 413, summary: 'the message is larger than the server accepts', closeCode: 1009 },
  SIG_RATE_LIMITED: { status: 429, summary: 'too many messages on this connection', closeCode: 1008 },
  SIG_UNKNOWN_PEER: { status: 404, summary: 'no connected peer of the other role has this id' },
  SIG_HELLO_TIMEOUT: { status: 408, summary: 'no hello message arrived in time after the connection opened', closeCode: 1008 },
  SIG_BANNED: { status: 403, summary: 'the operator banned this host (its tab, address or invite)', closeCode: 1008 },
  SIG_JOIN_CLOSED: { status: 403, summary: 'this network takes volunteers by invite only: ask the operator for a join link' },
} as const satisfies Record<string, { status: number; summary: string; closeCode?: number }>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Codes a host reports when the app, not the host, failed a request. The tab's runner sends
 * only these (anything else an app throws becomes HOST_HANDLER_ERROR); the ingress passes them
 * to the client as they are and does not count them against the host.
 */
export const APP_FAILURE_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'HOST_HANDLER_ERROR',
  'HOST_BAD_HANDLER_RESPONSE',
  'HOST_NO_APP',
  'HOST_OVERLOADED',
  'HOST_HANDLER_TIMEOUT',
  'HOST_HANDLER_CPU_LIMIT',
  'HOST_SANDBOX_RECYCLED',
  'HOST_SANDBOX_CRASHED',
  'HOST_SANDBOX_CLOSED',
  'HOST_APP_LOAD_FAILED',
]);

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
