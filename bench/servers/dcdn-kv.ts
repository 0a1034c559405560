/**
 * The network of the benchmark's kv section in one process: signaling with an in-memory app
 * store, one ingress (WebRTC over werift) per KV store, and one headless Chromium host tab
 * with a session to every ingress, serving bench/kv-app.ts as the app `kv` with the binding
 * `CACHE`. Started by the benchmark as a child, so its own requests never share this event loop.
 *
 *   node --import tsx bench/servers/dcdn-kv.ts --store sqlite=sqlite:/tmp/kv.db --store redis=redis+unix:///tmp/r/redis.sock
 *
 * The shared network is bench/servers/store-network.ts. Prints one JSON line when the tab has a WebRTC session to every ingress:
 * `{"ingresses": {NAME: url}, "skipped": {NAME: reason}, "pid", "browserPid"}`; a store that
 * cannot be opened is reported under `skipped`, not as a failure. `{"error": …}` when the tab
 * does not connect. Stops on SIGTERM or SIGINT; with `--exit-with-parent` also when stdin closes.
 */
import { fileURLToPath } from 'node:url';
import { runStoreNetwork } from './store-network.ts';

// The same code as `kv`, with the binding (`dcdn deploy bench/kv-app.ts --name kv --kv CACHE`).
await runStoreNetwork({
  app: fileURLToPath(new URL('../kv-app.ts', import.meta.url)),
  appName: 'kv',
  deployMessage: 'dcdn bench kv',
  deployConfig: { kv: ['CACHE'] },
  ingressPrefix: 'bench-kv',
  tabPrefix: 'kv-tab',
  storeOptions: (spec) => ({ kvStore: spec }),
});
