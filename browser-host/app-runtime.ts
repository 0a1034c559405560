/**
 * One loaded version of one app, able to answer requests. The in-page runtime
 * (module-runtime.ts) runs the module in the host page; a sandboxed runtime runs it in a
 * Worker inside an opaque-origin iframe. The registry swaps versions behind this interface.
 */
export interface AppRuntime {
  readonly app: string;
  readonly version: number;
  /** Answers one request. Rejects with an Error carrying a HOST_* `code` when the app fails. */
  fetch(request: Request): Promise<Response>;
  /** Resolves when the requests already given to it have finished (their bodies too). */
  drain(): Promise<void>;
  close(): void;
}

/** The code and settings a runtime is made from. */
export interface AppSource {
  app: string;
  version: number;
  /** The bundled ES module. */
  code: string;
  env: Record<string, unknown>;
}

export type RuntimeFactory = (source: AppSource) => Promise<AppRuntime>;

/** An error with one of the registry's HOST_* codes (matched on `code`). */
export function hostError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
