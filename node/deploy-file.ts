/**
 * Deploys an app module straight into an app store, as signaling's own process does for the
 * `default` app (`dcdn up --app`). Remote deploys go through the control API instead.
 */
import { createHash } from 'node:crypto';
import { bundleApp } from '../browser-host/index.ts';
import { parseAppConfig, type AppConfig } from '../protocol/index.ts';
import { checkBundle, type AppStore } from '../signaling/index.ts';
import type { Log } from './log.ts';

/**
 * Bundles an app file and deploys it to `store` as `name`, unless that code (and config) is
 * already active. `message` is the version's (what `dcdn apps` lists).
 *
 * @throws {DcdnError} APP_BAD_BUNDLE when the bundle is not a loadable Workers module.
 */
export async function deployFile(store: AppStore, name: string, file: string, log: Log, config: Partial<AppConfig> = {}, message = `from ${file}`): Promise<void> {
  const code = await bundleApp(file);
  const sha = createHash('sha256').update(code).digest('hex');
  const current = store.manifest().find((a) => a.name === name);
  const same = current && store.code(name, current.version)?.sha256 === sha && JSON.stringify(current.config) === JSON.stringify(parseAppConfig(config));
  if (current && same) return log('info', 'app unchanged', { app: name, version: current.version });
  await checkBundle(code);
  const v = store.deploy(name, code, message, config);
  log('info', 'deployed', { app: name, version: v.version, file, kib: Math.round(v.size / 1024) });
}
