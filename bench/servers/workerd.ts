/**
 * The workerd target: bench/bench-app.ts bundled with esbuild and served by workerd (npm
 * `workerd`, Cloudflare's runtime) from a temporary directory, bound to 127.0.0.1 only.
 */
import { build } from 'esbuild';
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT, spawnProcess, type Child } from '../children.ts';
import { onCleanup } from '../cleanup.ts';

const APP = fileURLToPath(new URL('../bench-app.ts', import.meta.url));
export const WORKERD_BIN = join(REPO_ROOT, 'node_modules', '.bin', 'workerd');

/** workerd's config: one worker, one HTTP socket on loopback. */
export function workerdConfig(port: number): string {
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .benchWorker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);

const benchWorker :Workerd.Worker = (
  modules = [ (name = "app.js", esModule = embed "app.js") ],
  compatibilityDate = "2025-09-01",
);
`;
}

/** Bundles the app, writes the config, starts workerd and waits until it answers. */
export async function startWorkerd(): Promise<{ child: Child; url: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'dcdn-bench-workerd-'));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  const unregister = onCleanup(removeDir);
  const bundle = await build({ entryPoints: [APP], bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', write: false, logLevel: 'silent' });
  await writeFile(join(dir, 'app.js'), bundle.outputFiles[0]!.text);
  const port = await freePort();
  await writeFile(join(dir, 'config.capnp'), workerdConfig(port));
  const child = spawnProcess('workerd', WORKERD_BIN, ['serve', join(dir, 'config.capnp')], { cwd: dir });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`workerd exited: ${child.stderrTail.join('\n')}`);
    try {
      if ((await fetch(`${url}/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`workerd did not answer within 20 s: ${child.stderrTail.join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, cleanup: () => (unregister(), removeDir()) };
}

/** A port free right now on 127.0.0.1 (workerd takes an address, not a listening socket). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
