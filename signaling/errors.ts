/**
 * Every error the signaling service can report, as plain data: `code -> { status, description,
 * closeCode? }`.
 *
 * `status` is the HTTP status when the error refuses an upgrade (or the nearest HTTP meaning when
 * it travels inside a WebSocket `error` message); `closeCode` is the WebSocket close code the
 * server uses when the error ends the connection (RFC 6455 §7.4.1). Codes travel on the wire and
 * are stable; descriptions are for people. docs/signaling.md documents each one and
 * `errors.test.ts` keeps the two in step.
 *
 * This file is runtime-neutral: the browser bundle imports it through `client.ts`.
 */
export const SIGNALING_ERRORS = {
  SIG_TOKEN_MISSING: { status: 401, description: 'No token: pass ?token= or Authorization: Bearer.' },
  SIG_TOKEN_INVALID: { status: 401, description: 'The token is malformed or its signature does not match.' },
  SIG_TOKEN_EXPIRED: { status: 401, description: 'The token has expired.' },
  SIG_TOKEN_SCOPE: { status: 403, description: 'The token is valid but its role may not use this endpoint.' },
  SIG_UPGRADE_REQUIRED: { status: 426, description: 'This endpoint only speaks WebSocket.' },
  SIG_BAD_MESSAGE: { status: 400, description: 'The message is not valid JSON or not a known message shape.', closeCode: 1008 },
  SIG_MESSAGE_TOO_LARGE: { status: 413, description: 'The message is larger than the server accepts.', closeCode: 1009 },
  SIG_RATE_LIMITED: { status: 429, description: 'Too many messages on this connection.', closeCode: 1008 },
  SIG_UNKNOWN_PEER: { status: 404, description: 'No connected peer of the other role has this id.' },
  SIG_HELLO_TIMEOUT: { status: 408, description: 'No hello message arrived in time after the connection opened.', closeCode: 1008 },
} as const satisfies Record<string, { status: number; description: string; closeCode?: number }>;

/** A stable signaling error code, e.g. `SIG_TOKEN_EXPIRED`. */
export type SignalingErrorCode = keyof typeof SIGNALING_ERRORS;

/** Whether `value` is one of the codes in {@link SIGNALING_ERRORS}. */
export function isSignalingErrorCode(value: unknown): value is SignalingErrorCode {
  return typeof value === 'string' && Object.hasOwn(SIGNALING_ERRORS, value);
}

/**
 * An error with a stable `code` and the HTTP `status` that goes with it.
 *
 * Match on `code`, not `instanceof`: the browser bundle and Node hold separate copies of this
 * class.
 *
 * @example
 * ```ts
 * try { verifyToken(secret, token, ['host']); }
 * catch (err) { if ((err as SignalingError).code === 'SIG_TOKEN_EXPIRED') refresh(); }
 * ```
 */
export class SignalingError extends Error {
  override name = 'SignalingError';
  readonly code: SignalingErrorCode;
  readonly status: number;

  constructor(code: SignalingErrorCode, message: string = SIGNALING_ERRORS[code].description) {
    super(message);
    this.code = code;
    this.status = SIGNALING_ERRORS[code].status;
  }
}
