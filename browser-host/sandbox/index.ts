/**
 * Per-app sandboxes for the host tab: each app in a dedicated worker inside an opaque-origin
 * iframe, streaming bodies, wall-time and CPU limits with recycling. See docs/sandbox.md.
 *
 * Bundles that include this folder need `sandboxRuntimePlugin()` from ./build.ts (Node side).
 */
export { createSandbox, Sandbox, type SandboxFetchOptions, type SandboxLimits, type SandboxOptions, type SandboxStats } from './sandbox.ts';
export { sandboxRuntimes } from './runtime-factory.ts';
export { SANDBOX_ERROR_CODES, SandboxError, type SandboxErrorCode } from './errors.ts';
