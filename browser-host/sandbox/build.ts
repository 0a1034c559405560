/**
 * Node side: bundles the sandbox's worker runtime and hands it to a page bundle as the module
 * `dcdn:sandbox-runtime`, whose default export is the runtime's source text. The runtime imports
 * web-compat.ts like the page does, so both get the same unguarded headers.
 */
import { build, type Plugin } from 'esbuild';
import { fileURLToPath } from 'node:url';

const RUNTIME_ENTRY = fileURLToPath(new URL('./worker-runtime.ts', import.meta.url));
const SPECIFIER = 'dcdn:sandbox-runtime';
const NAMESPACE = 'dcdn-sandbox-runtime';

/** The worker runtime as one ES module, and the files it was built from. */
export async function bundleSandboxRuntime(): Promise<{ code: string; inputs: string[] }> {
  const result = await build({
    entryPoints: [RUNTIME_ENTRY],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    metafile: true,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.text;
  if (code === undefined) throw new Error('esbuild produced no sandbox runtime');
  return { code, inputs: Object.keys(result.metafile.inputs).map((p) => fileURLToPath(new URL(p, `file://${process.cwd()}/`))) };
}

/**
 * An esbuild plugin that resolves `import RUNTIME from 'dcdn:sandbox-runtime'` (sandbox.ts).
 * Any bundle that includes browser-host/sandbox needs it.
 *
 * @example
 * ```ts
 * await build({ entryPoints: ['browser-host/main.ts'], bundle: true, plugins: [sandboxRuntimePlugin()] });
 * ```
 */
export function sandboxRuntimePlugin(): Plugin {
  return {
    name: 'dcdn-sandbox-runtime',
    setup(b) {
      b.onResolve({ filter: /^dcdn:sandbox-runtime$/ }, () => ({ path: SPECIFIER, namespace: NAMESPACE }));
      b.onLoad({ filter: /.*/, namespace: NAMESPACE }, async () => {
        const { code, inputs } = await bundleSandboxRuntime();
        return { contents: `export default ${JSON.stringify(code)};`, loader: 'js', watchFiles: inputs };
      });
    },
  };
}
