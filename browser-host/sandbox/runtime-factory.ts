import type { KvRouter, RuntimeFactory } from '../app-runtime.ts';

import { createSandbox, type SandboxLimits } from './sandbox.ts';

/**
 * A `RuntimeFactory` for `AppRegistry` that runs each app version in its own sandbox.
 *
 * @example
 * ```ts
 * const registry = new AppRegistry({ loadSource, createRuntime: sandboxRuntimes({ limits: { wallMs: 30_000, cpuMs: 5_000 }, log }) });
 * ```
 */
export function sandboxRuntimes(
  options: {
    limits?: Partial<SandboxLimits>;
    log?: (line: string) => void;
    /** Where an app's KV calls go; without it, KV calls fail with KV_UNKNOWN_BINDING. */
    kv?: (app: string) => KvRouter;
  } = {},
): RuntimeFactory {
  return (source) =>
    createSandbox({
      appName: source.app,
      version: source.version,
      code: source.code,
      env: source.env,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.log ? { log: options.log } : {}),
      ...(options.kv ? { kv: { bindings: source.kv ?? [], sql: source.sql ?? [], transport: options.kv(source.app) } } : {}),
    });
}
