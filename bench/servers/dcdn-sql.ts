/**
 * The network of the benchmark's sql section in one process (bench/servers/dcdn-kv.ts's twin):
 * signaling, one ingress (WebRTC over werift) per SQL store, one headless Chromium host tab with
 * a session to every ingress, serving bench/sql-app.ts as the app `sql` with the binding `DB`.
 *
 *   node --import tsx bench/servers/dcdn-sql.ts --store embedded=pglite:/tmp/sql --store postgres=postgres://…
 *
 * The shared network is bench/servers/store-network.ts. Prints one JSON line when the tab has a WebRTC session to every ingress:
 * `{"ingresses": {NAME: url}, "skipped": {NAME: reason}, "pid", "browserPid"}`; a store that
 * cannot be opened is reported under `skipped`, not as a failure. `{"error": …}` when the tab
 * does not connect. Stops on SIGTERM or SIGINT; with `--exit-with-parent` also when stdin closes.
 */
import { fileURLToPath } from 'node:url';
import { runStoreNetwork } from './store-network.ts';

// `dcdn deploy bench/sql-app.ts --name sql --sql DB`.
await runStoreNetwork({
  app: fileURLToPath(new URL('../sql-app.ts', import.meta.url)),
  appName: 'sql',
  deployMessage: 'dcdn bench sql',
  deployConfig: { kv: [], sql: ['DB'] },
  ingressPrefix: 'bench-sql',
  tabPrefix: 'sql-tab',
  storeOptions: (spec) => ({ sqlStore: spec, sqlLimits: { statementTimeoutMs: 60_000 } }),
});
