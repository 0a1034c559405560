import type { RuntimeFactory } from '../app-runtime.ts';
import { createSandbox, type SandboxLimits } from './sandbox.ts';

/**
 * A `RuntimeFactory` for `AppRegistry` that runs each app version in its own sandbox.
 *
 * @example
 * ```ts
 * const registry = new AppRegistry({ loadSource, createRuntime: sandboxRuntimes({ limits: { wallMs: 30_000, cpuMs: 5_000 }, log }) });
 * ```
 */
export function sandboxRuntimes(options: { limits?: Partial<SandboxLimits>; log?: (line: string) => void } = {}): RuntimeFactory {
  return (source) =>
    createSandbox({
      appName: source.app,
      version: source.version,
      code: source.code,
      env: source.env,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
}
