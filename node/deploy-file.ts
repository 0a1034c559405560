/**
 * Deploys an app module straight into a control store, as signaling's own process does for the
 * `default` app (`dcdn up --app`). Remote deploys go through the control API instead.
 */
import { bundleApp } from '../browser-host/index.ts';
import type { AppConfig } from '../protocol/index.ts';
import { checkBundle, type ControlStore } from '../signaling/index.ts';
import type { Log } from './log.ts';

/**
 * Bundles an app file and deploys it to `store` as `name`, unless that code (and config) is
 * already active (`deployIfChanged`). `message` is the version's (what `dcdn apps` lists).
 *
 * @throws {DcdnError} APP_BAD_BUNDLE when the bundle is not a loadable Workers module.
 */
export async function deployFile(store: ControlStore, name: string, file: string, log: Log, config: Partial<AppConfig> = {}, message = `from ${file}`): Promise<void> {
  const code = await bundleApp(file);
  await checkBundle(code);
  // Under the store's lock: M signaling nodes starting at once with one --app make one version.
  const v = await store.deployIfChanged(name, code, message, config);
  if (v === null) return log('info', 'app unchanged', { app: name, version: (await store.manifest()).find((a) => a.name === name)?.version });
  log('info', 'deployed', { app: name, version: v.version, file, kib: Math.round(v.size / 1024) });
}
