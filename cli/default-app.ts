/**
 * What `dcdn up`'s summary says it serves: the demo, a development file from `--app`, or a
 * `default` deployed earlier and kept in the app store (with how to get the demo back).
 */
import { activeVersion, DEMO_APP_MESSAGE, DEV_APP_MESSAGE } from '../node/index.ts';
import type { AppStore } from '../signaling/index.ts';

/** Where the active `default` app came from, in words for `dcdn up`'s summary. */
export function describeDefaultApp(store: AppStore): string {
  const v = activeVersion(store, 'default');
  if (!v) return 'none';
  if (v.message === DEMO_APP_MESSAGE) return `default@${v.version}: ${DEMO_APP_MESSAGE}`;
  if (v.message.startsWith(DEV_APP_MESSAGE)) return `default@${v.version}: ${v.message.slice(DEV_APP_MESSAGE.length)} (from --app)`;
  return `default@${v.version}: "${v.message}", deployed ${v.createdAt} and kept in the app store (not the demo: dcdn rollback default, or dcdn delete default and restart)`;
}
