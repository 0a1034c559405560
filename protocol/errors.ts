/**
 * The one registry of dcdn error codes.
 *
 * Codes travel on the wire (reset and error frames) and reach HTTP clients in the `dcdn-error`
 * header and the JSON error body, so they are stable: add codes, never rename them. Messages are
 * for people and may change. Every code here is documented in docs/errors.md with its status,
 * whether it is retryable and whom it blames; test/error-docs.test.ts keeps the two in step.
 * The mapping from a failure to its HTTP status lives here and nowhere else.
 *
 * Match on `code`, not `instanceof`: the browser bundle and Node hold separate copies of this
 * module.
 */

/**
 * Whom an error blames, so a reader knows where to look: `client` (the HTTP client, or the
 * caller of the control API or signaling), `host` (a browser tab), `app` (the deployed code),
 * `peer` (the other side of a channel or of signaling, either role), `ingress` (a dcdn bug or a
 * draining ingress), `operator` (configuration: flags, hosts, stores) and `kv-store` (SQLite or
 * Redis behind KV) and `sql-store` (PGlite or Postgres behind SQL bindings).
 */
export type ErrorBlame = 'client' | 'host' | 'app' | 'peer' | 'ingress' | 'operator' | 'kv-store' | 'sql-store';

/** One registry entry. */
export interface ErrorEntry {
  /** The HTTP status where the error reaches a client (500 for operator errors at startup). */
  status: number;
  /**
   * Whether the same request, retried unchanged (later, or on another host), may succeed.
   * The ingress itself retries only idempotent requests, and only on host faults.
   */
  retryable: boolean;
  blame: ErrorBlame;
  summary: string;
  /** The WebSocket close code (RFC 6455 §7.4.1) when a signaling error ends the connection. */
  closeCode?: number;
}

export const ERRORS = {
  // Wire protocol: what a peer did wrong on the channel.
  PROTO_DECODE: { status: 502, retryable: true, blame: 'peer', summary: 'a message could not be decoded as msgpack frames' },
  PROTO_FRAME_INVALID: { status: 502, retryable: true, blame: 'peer', summary: 'a frame had the wrong shape or field types' },
  PROTO_MESSAGE_TOO_LARGE: { status: 502, retryable: true, blame: 'peer', summary: 'a message or frame exceeded the negotiated size' },
  PROTO_STREAM_STATE: { status: 502, retryable: true, blame: 'peer', summary: 'a frame was not allowed in the state of its stream' },
  PROTO_FLOW_CONTROL: { status: 502, retryable: true, blame: 'peer', summary: 'a peer sent more body bytes than it had credit for' },
  PROTO_VERSION: { status: 502, retryable: false, blame: 'peer', summary: 'the peer speaks an incompatible protocol version' },
  PROTO_HELLO_TIMEOUT: { status: 502, retryable: true, blame: 'peer', summary: 'the peer sent no HELLO within the hello timeout after the channel opened' },
  PROTO_TOO_MANY_STREAMS: { status: 503, retryable: true, blame: 'peer', summary: 'the peer refused a stream over its concurrency limit' },
  PROTO_SESSION_CLOSED: { status: 502, retryable: true, blame: 'peer', summary: 'the channel closed while the stream was open' },
  PROTO_HEARTBEAT_TIMEOUT: { status: 502, retryable: true, blame: 'peer', summary: 'the peer stopped answering heartbeats' },
  PROTO_CANCELLED: { status: 499, retryable: false, blame: 'client', summary: 'the stream was cancelled by the side that opened it' },
  PROTO_RATE_LIMITED: { status: 502, retryable: true, blame: 'peer', summary: 'the peer sent frames of one kind (PING, RESET, CREDIT, heads, ...) faster than its budget; the session was closed' },
  PROTO_SLOW_PEER: { status: 502, retryable: true, blame: 'peer', summary: 'the peer stopped reading: more than the outbound limit was queued for it, so the session was closed' },

  // Ingress: decided at the HTTP edge.
  INGRESS_NO_HOST: { status: 503, retryable: true, blame: 'operator', summary: 'no healthy host is connected' },
  INGRESS_HOSTS_BUSY: { status: 503, retryable: true, blame: 'operator', summary: 'every host is at its concurrency limit' },
  INGRESS_SHUTTING_DOWN: { status: 503, retryable: true, blame: 'ingress', summary: 'the ingress is draining and accepts no new requests' },
  INGRESS_HEAD_TIMEOUT: { status: 504, retryable: true, blame: 'host', summary: 'the host sent no response head within the head timeout' },
  INGRESS_IDLE_TIMEOUT: { status: 504, retryable: true, blame: 'host', summary: 'the response body stalled longer than the idle timeout' },
  INGRESS_HOST_LOST: { status: 502, retryable: true, blame: 'host', summary: 'the host went away before the response head' },
  INGRESS_BAD_RESPONSE: { status: 502, retryable: true, blame: 'host', summary: 'the host answered with an invalid status, header or body length' },
  INGRESS_BAD_REQUEST: { status: 400, retryable: false, blame: 'client', summary: 'the request was malformed' },
  INGRESS_BAD_HOST: { status: 400, retryable: false, blame: 'client', summary: 'the Host header is not a valid authority (userinfo, a path or query, spaces, a bad port)' },
  INGRESS_REQUEST_TIMEOUT: { status: 408, retryable: true, blame: 'client', summary: 'the client sent its request too slowly' },
  INGRESS_BODY_TOO_LARGE: { status: 413, retryable: false, blame: 'client', summary: 'the request body exceeded the configured limit' },
  INGRESS_URL_TOO_LONG: { status: 414, retryable: false, blame: 'client', summary: 'the request URL exceeded the configured limit' },
  INGRESS_HEADERS_TOO_LARGE: { status: 431, retryable: false, blame: 'client', summary: 'the request headers exceeded the configured limit' },
  INGRESS_NOT_FOUND: { status: 404, retryable: false, blame: 'client', summary: 'no such ingress endpoint' },
  INGRESS_UNKNOWN_APP: { status: 404, retryable: false, blame: 'client', summary: 'no app is deployed under this hostname or path' },
  INGRESS_TICKET_INVALID: { status: 401, retryable: false, blame: 'host', summary: 'a host dialled the WebSocket endpoint without a valid ticket' },
  INGRESS_NOT_IMPLEMENTED: { status: 501, retryable: false, blame: 'client', summary: 'the ingress does not forward this kind of request (CONNECT, TRACE, an unknown method, an `Upgrade` request with a body)' },
  INGRESS_EXPECTATION_FAILED: { status: 417, retryable: false, blame: 'client', summary: 'the request carried an Expect value other than 100-continue' },
  INGRESS_BAD_OPTION: { status: 500, retryable: false, blame: 'operator', summary: 'an ingress option (library call or its flag) is missing or malformed; the message names it' },
  INGRESS_RTC_UNAVAILABLE: { status: 500, retryable: false, blame: 'operator', summary: 'the WebRTC backend asked for (node-datachannel) could not be loaded' },
  INGRESS_UNAUTHORIZED: { status: 401, retryable: false, blame: 'client', summary: 'an operator endpoint of the ingress (/_dcdn/metrics, /_dcdn/tail) was called without a token it accepts' },
  INGRESS_TAIL_FULL: { status: 503, retryable: true, blame: 'operator', summary: 'the ingress already streams requests to as many dcdn tail subscribers as it allows' },
  INGRESS_PEER_FORBIDDEN: { status: 403, retryable: false, blame: 'peer', summary: 'a request reached the peer-forwarding port without a valid dcdn-peer signature (a key from the control plane, within 30 s)' },
  INGRESS_INTERNAL_ERROR: { status: 500, retryable: true, blame: 'ingress', summary: 'the ingress failed while answering the request (a bug: please report it)' },

  // Host: the browser tab and the handler in it.
  HOST_HANDLER_ERROR: { status: 502, retryable: false, blame: 'app', summary: "the app's handler threw or rejected" },
  HOST_WEBSOCKET_FAILED: { status: 502, retryable: false, blame: 'app', summary: "an accepted WebSocket failed on the host: the handler sent faster than the visitor reads (over 16 MiB waiting), a message over the host's limit, or its worker broke the socket's message protocol; the visitor's socket closes with 1008, 1009 or 1011" },
  HOST_BAD_HANDLER_RESPONSE: { status: 502, retryable: false, blame: 'app', summary: "the app's handler returned something other than a Response, or a head the wire cannot carry (too many or too long headers)" },
  HOST_NO_APP: { status: 503, retryable: true, blame: 'host', summary: 'the host has no app loaded' },
  HOST_OVERLOADED: { status: 503, retryable: true, blame: 'host', summary: 'the host refused the request over its concurrency limit' },
  HOST_HANDLER_TIMEOUT: { status: 504, retryable: false, blame: 'app', summary: "the app's handler sent no response head within the wall-time limit; the request was cancelled (the sandbox is recycled only if the handler holds its worker)" },
  HOST_SANDBOX_RECYCLED: { status: 503, retryable: true, blame: 'app', summary: "the app's sandbox was recycled while the request was in it (another request hung it, or it flooded the page with bad messages)" },
  HOST_HANDLER_CPU_LIMIT: { status: 504, retryable: false, blame: 'app', summary: "the app's worker ran JavaScript past its CPU limit without yielding; its sandbox was recycled" },
  HOST_SANDBOX_CRASHED: { status: 502, retryable: true, blame: 'app', summary: "the app's sandbox process died (out of memory, killed) with the request in it" },
  HOST_APP_LOAD_FAILED: { status: 502, retryable: false, blame: 'app', summary: 'the app module threw while loading, has no default fetch(), or did not start in time' },
  HOST_SANDBOX_CLOSED: { status: 503, retryable: true, blame: 'host', summary: "the app's sandbox is draining or closed" },
  HOST_BROWSER_NOT_FOUND: { status: 500, retryable: false, blame: 'operator', summary: 'no Chromium or Chrome executable was found to launch hosts' },

  // Apps: the control API (deploy, rollback, secrets).
  APP_NOT_FOUND: { status: 404, retryable: false, blame: 'client', summary: 'no app has this name' },
  APP_BAD_NAME: { status: 400, retryable: false, blame: 'client', summary: 'app names are DNS labels: lowercase letters, digits and dashes' },
  APP_BAD_BUNDLE: { status: 400, retryable: false, blame: 'client', summary: 'the bundle is empty, too large, not an ES module, or has no default export with fetch()' },
  APP_LOAD_FAILED: { status: 422, retryable: false, blame: 'app', summary: 'a host could not load the new version (it threw, or has no fetch()), or none loaded it in time; the live version is unchanged' },
  APP_VERSION_NOT_FOUND: { status: 404, retryable: false, blame: 'client', summary: 'the app has no such version' },
  APP_BAD_SECRET: { status: 400, retryable: false, blame: 'client', summary: 'secret names are identifiers and values at most 5 KiB' },
  APP_BAD_CONFIG: { status: 400, retryable: false, blame: 'client', summary: 'the deploy options (KV bindings, volunteers, required capabilities) are malformed or clash with a secret' },
  APP_STORE_UNAVAILABLE: { status: 503, retryable: true, blame: 'operator', summary: 'the control store (Postgres in a cluster) is unreachable: deploys, secrets and bans cannot be written now; serving goes on from the cached state' },
  APP_BAD_CRON: { status: 400, retryable: false, blame: 'client', summary: 'a --cron expression is not valid cron (five fields, or six with seconds first; UTC): the message names it and what is wrong' },
  APP_BAD_QUERY: { status: 400, retryable: false, blame: 'client', summary: 'a query parameter of the control API is malformed (rollout ?wait= takes whole milliseconds)' },

  // Cron: scheduled handlers (docs/apps.md, "Cron triggers"). Outcomes of a run, recorded as its last run.
  CRON_NO_INGRESS: { status: 503, retryable: true, blame: 'operator', summary: 'no live ingress could run the scheduled event (none connected to signaling, or none answered); the tick is not retried, the next one runs' },
  CRON_TIMEOUT: { status: 504, retryable: true, blame: 'app', summary: 'the scheduled run (handler and ctx.waitUntil work) had no outcome within the cron run timeout' },

  // KV: handlers' key-value bindings (env.NAME). The handler's call rejects with an Error whose
  // `code` is one of these; `dcdn kv` and the KV wire answer carry them too.
  KV_BAD_KEY: { status: 400, retryable: false, blame: 'app', summary: 'keys are 1 to 512 bytes of UTF-8 and may not be "." or ".."' },
  KV_VALUE_TOO_LARGE: { status: 413, retryable: false, blame: 'app', summary: 'the value is larger than the value limit (25 MiB by default)' },
  KV_METADATA_TOO_LARGE: { status: 413, retryable: false, blame: 'app', summary: 'the metadata, serialised as JSON, is larger than 1 KiB or not JSON' },
  KV_BAD_EXPIRATION: { status: 400, retryable: false, blame: 'app', summary: 'expiration and expirationTtl must be whole seconds at least the minimum TTL (60 s by default) from now' },
  KV_BAD_LIST: { status: 400, retryable: false, blame: 'app', summary: 'list() takes a limit of 1 to 1000, a prefix within the key limit and a cursor it returned' },
  KV_BAD_REQUEST: { status: 400, retryable: false, blame: 'app', summary: 'the KV operation was malformed' },
  KV_TIMEOUT: { status: 408, retryable: true, blame: 'host', summary: 'the tab stalled while a value streamed (no chunk, or no credit) for the idle timeout' },
  KV_UNKNOWN_BINDING: { status: 404, retryable: false, blame: 'app', summary: 'the app has no KV binding of this name in its deployed version' },
  KV_FORBIDDEN: { status: 403, retryable: false, blame: 'host', summary: 'this host may not use the namespaces of the app it named' },
  KV_NOT_CONFIGURED: { status: 503, retryable: false, blame: 'operator', summary: 'the ingress that received the operation has no KV store' },
  KV_STORE_UNAVAILABLE: { status: 503, retryable: true, blame: 'kv-store', summary: 'the KV backend (SQLite file or Redis) failed or is unreachable' },

  // SQL: handlers' SQL bindings (env.NAME, docs/sql.md). The handler's call rejects with an Error
  // whose `code` is one of these and whose message starts `D1_ERROR:` as D1's do.
  SQL_ERROR: { status: 400, retryable: false, blame: 'app', summary: "the database refused the statement (syntax, a missing table, a constraint); the message is Postgres' own, prefixed `D1_ERROR:`, and `err.sqlState` its SQLSTATE" },
  SQL_PERMISSION_DENIED: { status: 403, retryable: false, blame: 'app', summary: "the statement reached outside its binding's schema (another schema, a role, a server file): Postgres' 42501 insufficient_privilege" },
  SQL_TIMEOUT: { status: 504, retryable: false, blame: 'app', summary: 'a statement ran longer than the statement timeout (5 s by default) and was cancelled; its transaction rolled back' },
  SQL_RESULT_TOO_LARGE: { status: 413, retryable: false, blame: 'app', summary: 'a result has more rows (100 000) or bytes (16 MiB) than the limit; refused while it was being read, its transaction rolled back' },
  SQL_TOO_MANY_STATEMENTS: { status: 400, retryable: false, blame: 'app', summary: 'more statements in one call (batch) or one handler request than allowed (1000 by default)' },
  SQL_TOO_MANY_QUERIES: { status: 503, retryable: true, blame: 'host', summary: 'this host already has its limit of SQL calls running at the ingress (16 by default); retry later' },
  SQL_BAD_REQUEST: { status: 400, retryable: false, blame: 'app', summary: 'the SQL call was malformed: no statement, a parameter of no SQL type, a body over the request limit' },
  SQL_UNKNOWN_BINDING: { status: 404, retryable: false, blame: 'app', summary: 'the app has no SQL binding of this name in its deployed version' },
  SQL_FORBIDDEN: { status: 403, retryable: false, blame: 'host', summary: 'this host may not use the databases of the app it named (volunteers only run apps deployed with --volunteers)' },
  SQL_NOT_CONFIGURED: { status: 503, retryable: false, blame: 'operator', summary: 'the ingress that received the call has no SQL store' },
  SQL_STORE_UNAVAILABLE: { status: 503, retryable: true, blame: 'sql-store', summary: 'the SQL backend (embedded PGlite or Postgres) failed or is unreachable' },

  // Cache: handlers' Cache API (caches.default, caches.open(name)); the call rejects with an
  // Error whose `code` is one of these (docs/cache.md).
  CACHE_BAD_REQUEST: { status: 400, retryable: false, blame: 'app', summary: 'the Cache API operation was malformed: a cache name of 1 to 256 characters and an absolute http(s) URL' },
  CACHE_ENTRY_TOO_LARGE: { status: 413, retryable: false, blame: 'app', summary: "the response is larger than the ingress cache's per-entry limit (--cache-max-entry, 8 MiB by default), or than it has room for" },
  CACHE_FORBIDDEN: { status: 403, retryable: false, blame: 'host', summary: 'this host may not use the caches of the app it named' },

  // Signaling: the control plane. `closeCode` is the WebSocket close code (RFC 6455 §7.4.1)
  // used when the error ends a signaling connection.
  SIG_TOKEN_MISSING: { status: 401, retryable: false, blame: 'client', summary: 'no token: pass ?token= or Authorization: Bearer' },
  SIG_TOKEN_INVALID: { status: 401, retryable: false, blame: 'client', summary: 'the token is malformed or its signature does not match' },
  SIG_TOKEN_EXPIRED: { status: 401, retryable: false, blame: 'client', summary: 'the token has expired' },
  SIG_TOKEN_SCOPE: { status: 403, retryable: false, blame: 'client', summary: 'the token is valid but its role may not use this endpoint' },
  SIG_UPGRADE_REQUIRED: { status: 426, retryable: false, blame: 'client', summary: 'this endpoint only speaks WebSocket' },
  SIG_BAD_MESSAGE: { status: 400, retryable: false, blame: 'client', summary: 'the message is not valid JSON or not a known message shape', closeCode: 1008 },
  SIG_MESSAGE_TOO_LARGE: { status: 413, retryable: false, blame: 'client', summary: 'the message is larger than the server accepts', closeCode: 1009 },
  SIG_RATE_LIMITED: { status: 429, retryable: true, blame: 'client', summary: 'too many messages on this connection', closeCode: 1008 },
  SIG_UNKNOWN_PEER: { status: 404, retryable: true, blame: 'peer', summary: 'no connected peer of the other role has this id' },
  SIG_HELLO_TIMEOUT: { status: 408, retryable: true, blame: 'client', summary: 'no hello message arrived in time after the connection opened', closeCode: 1008 },
  SIG_BANNED: { status: 403, retryable: false, blame: 'host', summary: 'the operator banned this host (its tab, address or invite)', closeCode: 1008 },
  SIG_BAD_OPTION: { status: 500, retryable: false, blame: 'operator', summary: 'a signaling option (STUN/TURN configuration) is missing or malformed; the message names it' },
  SIG_DUPLICATE_PEER: { status: 409, retryable: true, blame: 'peer', summary: 'a newer connection registered this host id or ingress name (the newest wins); a tab should reconnect with a fresh id', closeCode: 1008 },
  SIG_PEER_UNREACHABLE: { status: 503, retryable: true, blame: 'operator', summary: 'the target peer is on a signaling node that cannot be reached now (node lost, or the cluster bus is down)' },
  SIG_KEEPALIVE_TIMEOUT: { status: 504, retryable: true, blame: 'operator', summary: 'the client heard nothing from the signaling server (not even a pong) for keepaliveTimeoutMs and reconnects: a frozen server or a silent network cut', closeCode: 4000 },
  SIG_JOIN_CLOSED: { status: 403, retryable: false, blame: 'client', summary: 'this network takes volunteers by invite only: ask the operator for a join link' },
} as const satisfies Record<string, ErrorEntry>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Codes a host reports when the app, not the host, failed a request. The tab's runner sends
 * only these (anything else an app throws becomes HOST_HANDLER_ERROR); the ingress passes them
 * to the client as they are and does not count them against the host.
 */
export const APP_FAILURE_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'HOST_HANDLER_ERROR',
  'HOST_WEBSOCKET_FAILED',
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
