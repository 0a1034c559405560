import type { AppRuntime, AppSource, KvRouter, RequestContext } from './app-runtime.ts';
import { hostError } from './app-runtime.ts';
import { NativeResponse } from './web-compat.ts';
import { KvNamespace } from './kv/namespace.ts';
import { SqlDatabase } from './sql/database.ts';
import { SCHEDULED_METHOD, SCHEDULED_OK_STATUS } from '../protocol/index.ts';
import { runScheduledHandler, type ScheduledModule } from './scheduled-event.ts';

/** What a user deploys: the Workers module shape. */
export interface AppModule {
  fetch(request: Request, env: Record<string, unknown>, ctx: ExecutionContext): Response | Promise<Response>;
}

/** The `ctx` argument of a handler, as in Cloudflare Workers. */
export interface ExecutionContext {
  /** Keeps the tab working on `promise` after the response has been sent. */
  waitUntil(promise: Promise<unknown>): void;
  /** Accepted for compatibility; dcdn has no origin to fall through to. */
  passThroughOnException(): void;
}

/**
 * Runs an app module in the host page itself (no isolation from the page or other apps): the
 * runtime for a tab that serves one trusted app.
 */
export async function createModuleRuntime(source: AppSource, log: (line: string) => void = () => {}, kv?: (app: string) => KvRouter): Promise<AppRuntime> {
  const url = URL.createObjectURL(new Blob([source.code], { type: 'text/javascript' }));
  let mod: { default?: AppModule };
  try {
    mod = (await import(/* @vite-ignore */ url)) as { default?: AppModule };
  } finally {
    URL.revokeObjectURL(url);
  }
  const app = mod.default;
  if (!app || typeof app.fetch !== 'function') throw hostError('HOST_NO_APP', `${source.app}@${source.version} has no default export with a fetch() method`);
  const router = kv?.(source.app);
  const bindings = source.kv ?? [];
  const databases = source.sql ?? [];
  // KV and SQL bindings name the request's session, so their calls go back to the ingress it came from.
  const envFor = (context?: RequestContext) => {
    if (!router || bindings.length + databases.length === 0) return source.env;
    const send = (call: Parameters<KvRouter>[0]) => router(call, context?.session ?? null);
    return {
      ...source.env,
      ...Object.fromEntries(bindings.map((name) => [name, new KvNamespace(name, send)])),
      ...Object.fromEntries(databases.map((name) => [name, new SqlDatabase(name, send)])),
    };
  };
  return moduleRuntime(source.app, source.version, app, envFor, log);
}

/** Wraps an already imported module (the demo app in tests, a module the page bundled). */
export function moduleRuntime(
  name: string,
  version: number,
  app: AppModule,
  env: Record<string, unknown> | ((context?: RequestContext) => Record<string, unknown>),
  log: (line: string) => void = () => {},
): AppRuntime {
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  return {
    app: name,
    version,
    async fetch(request, context) {
      if (request.method === SCHEDULED_METHOD) {
        const headers = [...request.headers] as Array<[string, string]>;
        try {
          await runScheduledHandler(app as AppModule & ScheduledModule, headers, typeof env === 'function' ? env(context) : env);
        } catch (err) {
          throw hostError('HOST_HANDLER_ERROR', err instanceof Error && err.stack ? err.stack : describe(err));
        }
        return new NativeResponse(null, { status: SCHEDULED_OK_STATUS });
      }
      const waits: Promise<unknown>[] = [];
      const ctx: ExecutionContext = {
        waitUntil: (p) => void waits.push(Promise.resolve(p).catch((e) => log(`${name}: waitUntil rejected: ${String(e)}`))),
        passThroughOnException: () => {},
      };
      let response: unknown;
      try {
        response = await app.fetch(request, typeof env === 'function' ? env(context) : env, ctx);
      } catch (err) {
        throw hostError('HOST_HANDLER_ERROR', describe(err));
      }
      track(Promise.all(waits));
      // Not the global Response: after the shim, a proxied fetch() response is only a NativeResponse.
      if (!(response instanceof NativeResponse)) throw hostError('HOST_BAD_HANDLER_RESPONSE', `fetch() returned ${typeof response}, not a Response`);
      return response;
    },
    async drain() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
    close() {},
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
