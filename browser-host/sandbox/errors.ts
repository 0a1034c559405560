/**
 * The codes a sandbox fails a request with: a view of the one registry, protocol/errors.ts,
 * which holds their statuses, retryability and blame (this file once kept its own copy, and it
 * drifted). Callers match on `code`, never on the class: the page bundle and Node hold separate
 * copies.
 */
// A leaf import, not protocol/index.ts: this file is bundled into every sandbox worker, and the
// index would pull msgpackr in with it. test/boundaries.test.ts allows it by name.
import { DcdnError, ERRORS } from '../../protocol/errors.ts';

/** The codes a sandbox reports. */
export const SANDBOX_ERROR_CODES = [
  'HOST_HANDLER_TIMEOUT',
  'HOST_HANDLER_CPU_LIMIT',
  'HOST_SANDBOX_RECYCLED',
  'HOST_SANDBOX_CRASHED',
  'HOST_APP_LOAD_FAILED',
  'HOST_SANDBOX_CLOSED',
  'HOST_HANDLER_ERROR',
  'HOST_BAD_HANDLER_RESPONSE',
  'HOST_OVERLOADED',
] as const satisfies ReadonlyArray<keyof typeof ERRORS>;

export type SandboxErrorCode = (typeof SANDBOX_ERROR_CODES)[number];

/**
 * A request (or `createSandbox`) failed for a reason the sandbox can name: a {@link DcdnError}
 * whose code is one of {@link SANDBOX_ERROR_CODES}.
 *
 * @example
 * ```ts
 * try { await sandbox.fetch(request); }
 * catch (err) { if ((err as { code?: string }).code === 'HOST_HANDLER_TIMEOUT') ... }
 * ```
 */
export class SandboxError extends DcdnError {
  declare readonly code: SandboxErrorCode;

  constructor(code: SandboxErrorCode, message: string = ERRORS[code].summary) {
    super(code, message);
    this.name = 'SandboxError';
  }
}

/** `Name: message` of anything thrown, for error messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
