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
 * This file is runtime-neutral: the browser bundle imports it through `signaling-client.ts`. The codes
 * themselves live in the project's one registry, protocol/errors.ts; this is the signaling view.
 */
import { ERRORS } from './errors.ts';
export const SIGNALING_ERRORS = pickSignaling(ERRORS);

function pickSignaling<T extends Record<string, { status: number; summary: string; closeCode?: number }>>(all: T) {
  const out: Record<string, { status: number; description: string; closeCode?: number }> = {};
  for (const [code, e] of Object.entries(all)) if (code.startsWith('SIG_')) out[code] = { status: e.status, description: e.summary, ...(e.closeCode ? { closeCode: e.closeCode } : {}) };
  return out as { [K in Extract<keyof T, `SIG_${string}`>]: { status: number; description: string; closeCode?: number } };
}

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
