/**
 * The codes a sandbox fails a request with, and the HTTP status each should map to.
 *
 * The project's one registry is protocol/errors.ts; the codes new here (marked) are to be added
 * there with these statuses, after which `SandboxError` can give way to `DcdnError`. Callers
 * match on `code`, never on the class: the page bundle and Node hold separate copies.
 */
export const SANDBOX_ERRORS = {
  /** new */
  HOST_HANDLER_TIMEOUT: { status: 504, summary: "the app's handler sent no response head within the wall-time limit" },
  /** new */
  HOST_HANDLER_CPU_LIMIT: {
    status: 504,
    summary: "the app's worker ran JavaScript without yielding for longer than its CPU limit; every request in it failed and it was recycled",
  },
  /** new */
  HOST_SANDBOX_RECYCLED: {
    status: 503,
    summary: "the app's sandbox was recycled while this request was in flight (another request hung it, or it flooded the page with bad messages)",
  },
  /** new */
  HOST_SANDBOX_CRASHED: { status: 502, summary: "the app's sandbox crashed (out of memory, killed) while this request was in flight" },
  /** new */
  HOST_APP_LOAD_FAILED: { status: 502, summary: "the app's module failed to load in its sandbox (threw, timed out, or has no default fetch)" },
  /** new */
  HOST_SANDBOX_CLOSED: { status: 503, summary: "the app's sandbox is draining or closed and takes no requests" },
  HOST_HANDLER_ERROR: { status: 502, summary: "the app's handler threw or rejected" },
  HOST_BAD_HANDLER_RESPONSE: { status: 502, summary: "the app's handler returned something other than a Response" },
  HOST_OVERLOADED: { status: 503, summary: 'the host refused the request over its concurrency limit' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type SandboxErrorCode = keyof typeof SANDBOX_ERRORS;

/**
 * A request (or `createSandbox`) failed for a reason the sandbox can name.
 *
 * @example
 * ```ts
 * try { await sandbox.fetch(request); }
 * catch (err) { if ((err as { code?: string }).code === 'HOST_HANDLER_TIMEOUT') ... }
 * ```
 */
export class SandboxError extends Error {
  readonly code: SandboxErrorCode;

  constructor(code: SandboxErrorCode, message: string = SANDBOX_ERRORS[code].summary) {
    super(message);
    this.name = 'SandboxError';
    this.code = code;
  }
}

/** `Name: message` of anything thrown, for error messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
