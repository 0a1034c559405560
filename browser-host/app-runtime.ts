import type { Session } from '../protocol/index.ts';
import type { KvAnswer, KvCall } from './kv/namespace.ts';

/**
 * One loaded version of one app, able to answer requests. The in-page runtime
 * (module-runtime.ts) runs the module in the host page; a sandboxed runtime runs it in a
 * Worker inside an opaque-origin iframe. The registry swaps versions behind this interface.
 */
export interface AppRuntime {
  readonly app: string;
  readonly version: number;
  /** Answers one request. Rejects with an Error carrying a HOST_* `code` when the app fails. */
  fetch(request: Request, context?: RequestContext): Promise<Response>;
  /** Resolves when the requests already given to it have finished (their bodies too). */
  drain(): Promise<void>;
  close(): void;
}

/** Where a request came from, for what the handler does on its behalf. */
export interface RequestContext {
  /** The session the request arrived on: its handler's KV calls go back over it. */
  session?: Session;
}

/**
 * Carries an app's KV calls to an ingress: over `via` (the session of the request that made
 * the call) while it is open, else over any session the tab has.
 */
export type KvRouter = (call: KvCall, via: Session | null) => Promise<KvAnswer>;

/** The code and settings a runtime is made from. */
export interface AppSource {
  app: string;
  version: number;
  /** The bundled ES module. */
  code: string;
  env: Record<string, unknown>;
  /** KV bindings the version declares: each becomes `env.NAME` (browser-host/kv/namespace.ts). */
  kv?: string[];
  /** SQL bindings the version declares: each becomes `env.NAME` (browser-host/sql/database.ts). */
  sql?: string[];
}

export type RuntimeFactory = (source: AppSource) => Promise<AppRuntime>;

/** An error with one of the registry's HOST_* codes (matched on `code`). */
export function hostError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
