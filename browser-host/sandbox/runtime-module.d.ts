/**
 * The bundled worker runtime (worker-runtime.ts) as a string, provided at bundle time by
 * `sandboxRuntimePlugin()` from build.ts.
 */
declare module 'dcdn:sandbox-runtime' {
  const source: string;
  export default source;
}
