import { build, type BuildOptions, type Plugin } from 'esbuild';
import { isAbsolute, resolve } from 'node:path';
import { sandboxRuntimePlugin } from '../sandbox/build.ts';
import { fileURLToPath } from 'node:url';

const HOST_ENTRY = fileURLToPath(new URL('../main.ts', import.meta.url));
const JOIN_ENTRY = fileURLToPath(new URL('../join.ts', import.meta.url));
/** The app served when none is given. */
export const DEMO_APP = fileURLToPath(new URL('../demo-app.ts', import.meta.url));

/** Bundles the host page's script (browser-host/main.ts) into one ES module. */
export async function bundleHostScript(): Promise<string> {
  // The sandbox's worker runtime is bundled separately and inlined as text (see sandbox/build.ts).
  return bundle(HOST_ENTRY, { minify: false, plugins: [sandboxRuntimePlugin()] });
}

/** Bundles the volunteer join page's script (browser-host/join.ts), served as `/join.js`. */
export async function bundleJoinScript(): Promise<string> {
  return bundle(JOIN_ENTRY, { minify: false, plugins: [sandboxRuntimePlugin()] });
}

/** The volunteer join page (`/join`); its markup lives in join-page.ts. */
export { joinPageHtml } from './join-page.ts';

/**
 * Bundles an app module (its npm imports resolved from its own folder) into one ES module that
 * the host page imports. Throws with esbuild's messages when the app does not build.
 */
export async function bundleApp(entry: string = DEMO_APP): Promise<string> {
  return (await bundleAppWithInputs(entry)).code;
}

/** A bundled app and the files it was built from. */
export interface AppBundle {
  /** The ES module `bundleApp` produces. */
  code: string;
  /** Absolute paths of every file esbuild read: the entry, its imports, the npm modules used. */
  inputs: string[];
}

/**
 * `bundleApp`, also listing the bundle's inputs (from esbuild's metafile), which `dcdn up --app`
 * watches for changes.
 *
 * @throws esbuild's build failure (its `errors` carry file, line and text) when the app does not build.
 */
export async function bundleAppWithInputs(entry: string): Promise<AppBundle> {
  const absWorkingDir = process.cwd();
  const result = await build({ ...buildOptions(entry, { minify: false }), metafile: true, absWorkingDir });
  // Metafile paths are relative to the working directory; plugin namespaces ("ns:path") are not files.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((p) => !/^[a-z-]+:/.test(p))
    .map((p) => (isAbsolute(p) ? p : resolve(absWorkingDir, p)));
  return { code: result.outputFiles[0]!.text, inputs };
}

async function bundle(entry: string, opts: { minify: boolean; plugins?: Plugin[] }): Promise<string> {
  const result = await build(buildOptions(entry, opts));
  return result.outputFiles[0]!.text;
}

function buildOptions(entry: string, opts: { minify: boolean; plugins?: Plugin[] }) {
  return {
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: opts.minify,
    sourcemap: 'inline',
    logLevel: 'silent',
    conditions: ['worker', 'browser'],
    plugins: opts.plugins ?? [],
  } satisfies BuildOptions;
}

/** The host page. Its script and the app come from the same server. */
export function hostPageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dcdn host</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 44rem; padding: 0 1rem; color: #1d232a; background: #f6f7f9; }
  h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
  p.lead { margin: 0 0 1.25rem; color: #55606b; }
  table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #dde1e6; border-radius: 6px; }
  th, td { text-align: left; padding: .45rem .8rem; border-bottom: 1px solid #eef0f3; vertical-align: top; }
  th { width: 8rem; color: #55606b; font-weight: 500; }
  pre { background: #1d232a; color: #d6dde4; padding: .8rem; border-radius: 6px; font-size: 12px; overflow-x: auto; min-height: 6rem; }
  .error { color: #b3261e; font-weight: 600; }
</style>
</head>
<body>
<h1>dcdn host</h1>
<p class="lead">This tab runs web request handlers for a dcdn network. Keep it open to keep serving.</p>
<div id="status">starting…</div>
<h2 style="font-size:1rem;margin-top:1.5rem">Log</h2>
<pre id="log"></pre>
<script type="module" src="/host.js"></script>
</body>
</html>
`;
}
