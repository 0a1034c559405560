/**
 * Every command's flags, usage line and description: what `dcdn --help` and `dcdn CMD --help`
 * print. Kept apart from the commands themselves, and importing nothing heavy (no fastify,
 * werift, puppeteer, esbuild or SQLite), so that help answers at once (cli/main.ts loads a
 * command's implementation only when it runs).
 */
import { DEFAULT_HEAP_LIMIT_MB } from '../browser-host/launcher/heap-limit.ts';
import { INVITE_GRACE_MS } from '../signaling/invite-grace.ts';
import { clusterFlags } from './cluster-flags.ts';
import { DEFAULT_ROLLOUT_TIMEOUT_MS } from '../signaling/rollout.ts';
import type { FlagSpec } from './args.ts';
import { iceFlags, ingressIceFlags } from './ice-flags.ts';
import { logFlags } from './log-flags.ts';
import { metricsFlags, otlpFlags, timingFlags } from './metrics-flags.ts';
import { trafficFlags } from './traffic-flags.ts';
import { sqlFlags } from './sql-flags.ts';

/** `--help`, on every command. */
export const helpFlag = { type: 'boolean', short: 'h', default: false, help: 'show this help' } as const;

/** `--secret`, on the commands that sign tokens. */
export const secretFlag = { type: 'string', help: 'signing secret shared by the network (else DCDN_SECRET)' } as const;

/** How long a long-running command lets in-flight work finish after SIGINT/SIGTERM. */
export const shutdownGraceFlag = {
  type: 'string',
  default: '10000',
  help: 'on SIGTERM/SIGINT (Ctrl-C), ms in-flight requests get to finish before they are cut (a second signal exits at once)',
} as const;

/** The control API's address and credentials, on every command that talks to it. */
export const controlFlags = {
  signal: { type: 'string', short: 's', help: 'signaling/control address (default: from the local dcdn up)' },
  token: { type: 'string', help: 'operator token (else DCDN_TOKEN, a token minted from DCDN_SECRET, or the local state)' },
  ingress: { type: 'string', help: "the ingress's public URL, to print apps' URLs (else DCDN_INGRESS, or the local dcdn up's)" },
  'base-domain': { type: 'string', help: "the ingress's app base domain, for NAME.DOMAIN URLs (else DCDN_BASE_DOMAIN, or the local dcdn up's)" },
} satisfies FlagSpec;

/** For the commands that change what hosts serve: deploy, rollback, secret. */
export const rolloutFlags = {
  'rollout-timeout': {
    type: 'string',
    default: String(DEFAULT_ROLLOUT_TIMEOUT_MS / 1000),
    help: 'seconds to wait until every connected host serves the change (0: do not wait); exits 1 if some host lags or failed',
  },
} satisfies FlagSpec;

/** `dcdn invite`. */
export const inviteFlags = {
  apps: { type: 'string', help: 'comma-separated apps the invite is for (default: every app deployed with --volunteers)' },
  ttl: { type: 'string', default: '24h', help: 'how long the link works: 90m, 24h, 7d, or seconds' },
  json: { type: 'boolean', default: false, help: 'print JSON (token, link, expiry)' },
  ...controlFlags,
} satisfies FlagSpec;

/** `dcdn hosts`. */
export const hostsFlags = {
  reason: { type: 'string', help: 'ban: why (kept with the ban, shown to nobody else)' },
  invite: { type: 'boolean', default: false, help: 'ban: also ban every tab that joined with the same invite' },
  address: { type: 'boolean', default: false, help: 'ban: also ban its IP address (shared behind NAT: use with care)' },
  json: { type: 'boolean', default: false, help: 'list/bans: print JSON' },
  ...controlFlags,
} satisfies FlagSpec;

/** `dcdn kv`. */
export const kvFlags = {
  app: { type: 'string', short: 'a', help: 'the app whose namespace to use' },
  binding: { type: 'string', short: 'b', help: 'the KV binding (env.BINDING) of that app' },
  store: { type: 'string', help: 'sqlite:PATH or redis://… (default: the local dcdn up\'s, else $DCDN_HOME/kv.db; env DCDN_KV_STORE)' },
  ttl: { type: 'string', help: 'put: seconds until the key expires (at least 60)' },
  expiration: { type: 'string', help: 'put: Unix time at which the key expires' },
  metadata: { type: 'string', help: 'put: JSON metadata (at most 1 KiB)' },
  file: { type: 'string', short: 'f', help: 'put: read the value from this file (else the VALUE argument, else stdin)' },
  prefix: { type: 'string', help: 'list: only keys starting with this' },
  limit: { type: 'string', help: 'list: at most this many keys (1-1000, default 1000)' },
  cursor: { type: 'string', help: 'list: continue from a cursor a previous list printed' },
  json: { type: 'boolean', default: false, help: 'list/get: print JSON (get: value as text with metadata)' },
} satisfies FlagSpec;

/** `dcdn cron`'s help (here, so `dcdn --help` loads nothing else). */
export const cronUsage = 'dcdn cron trigger NAME';

export const cronDescription =
  "Runs app NAME's scheduled(controller, env, ctx) handler once now, on one host that may run it, and\n" +
  'prints the outcome (ok, or the error with its stack); exits 1 when the run failed. controller.cron\n' +
  "is the app's first --cron expression ('' without one); controller.scheduledTime is now. The run is\n" +
  'recorded as the last run (dcdn apps). Schedules are set with dcdn deploy --cron (docs/apps.md).';

export const kvUsage = 'dcdn kv get|put|delete|list [KEY] [VALUE] --app NAME --binding BINDING [--store SPEC]';
export const kvDescription =
  'Reads and writes an app\'s KV namespace, the data its handler sees as env.BINDING.\n' +
  '  dcdn kv get KEY           prints the value (raw bytes; --json for text with metadata)\n' +
  '  dcdn kv put KEY [VALUE]   stores VALUE, --file F or stdin; --ttl, --expiration, --metadata\n' +
  '  dcdn kv delete KEY\n' +
  '  dcdn kv list              keys in byte order; --prefix, --limit, --cursor\n' +
  'Limits are the handlers\' (key 512 bytes, value 25 MiB, metadata 1 KiB); errors print their code.';

/** `dcdn signal`. */
export const signalFlags = {
  port: { type: 'string', short: 'p', default: '8787', help: 'port to listen on' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  secret: secretFlag,
  app: { type: 'string', short: 'a', help: 'module to deploy as the default app (default: the demo app; it replaces a default an earlier --app left, not one deployed with dcdn deploy)' },
  db: { type: 'string', help: 'app store (SQLite) path (default: $DCDN_HOME/apps.db, DCDN_HOME defaults to ~/.dcdn)' },
  'control-store': {
    type: 'string',
    help: 'apps, versions, secrets, bans and keys: sqlite:PATH (this node alone; the default, as --db) or postgres://USER[:PASS]@HOST[:PORT]/DB, shared by every signaling node of a cluster (docs/cluster-control.md; env DCDN_CONTROL_STORE keeps a password off the command line)',
  },
  'open-join': { type: 'boolean', default: false, help: 'let anyone join as a volunteer host from /join, without an invite' },
  'invite-grace': { type: 'string', default: String(INVITE_GRACE_MS), help: "ms a volunteer keeps serving after its invite expired (requests in flight finish); then its sessions end" },
  'cron-run-timeout': { type: 'string', default: '60000', help: 'ms signaling waits for a scheduled run (a --cron tick, or dcdn cron trigger) before recording it as CRON_TIMEOUT' },
  'cron-claim-grace': { type: 'string', default: '2000', help: 'cluster: ms a signaling node without an ingress of its own lets the other nodes claim a cron tick before it does' },
  ...iceFlags,
  ...clusterFlags,
  ...metricsFlags,
  ...logFlags,
} satisfies FlagSpec;

/** `dcdn ingress`'s flags (all but --help). */
export const ingressFlags = {
  signal: { type: 'string', short: 's', help: 'signaling address, e.g. http://127.0.0.1:8787' },
  port: { type: 'string', short: 'p', default: '8080', help: 'HTTP port' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (0.0.0.0 for every interface)' },
  name: { type: 'string', default: 'ingress', help: 'name in signaling and logs; in a cluster the placement key, unique per ingress' },
  transport: { type: 'string', short: 't', default: 'webrtc', help: 'webrtc or websocket' },
  rtc: { type: 'string', default: 'werift', help: 'WebRTC stack: werift, or node-datachannel (native, optional dependency)' },
  secret: secretFlag,
  token: { type: 'string', help: 'an ingress token instead of the secret (else DCDN_TOKEN)' },
  'shutdown-grace': shutdownGraceFlag,
  'kv-store': { type: 'string', help: "handlers' KV store: sqlite:PATH, redis://HOST:PORT or postgres://USER@HOST/DB (shared by several ingresses), or none (default: sqlite:$DCDN_HOME/kv.db; env DCDN_KV_STORE)" },
  'kv-min-ttl': { type: 'string', default: '60', help: 'shortest KV expirationTtl accepted, in seconds' },
  ...sqlFlags,
  'base-domain': { type: 'string', default: 'localhost', help: 'apps answer on NAME.<base-domain> (and on /@NAME/ under any name)' },
  'public-ws': { type: 'string', help: 'base URL hosts dial for the WebSocket transport and fallback, e.g. wss://ingress.example.net (default ws://<host>:<port>)' },
  region: { type: 'string', default: 'default', help: 'cluster: this ingress\'s region; hosts of the same region attach to it first' },
  weight: { type: 'string', default: '1', help: 'cluster: placement weight (twice the weight takes about twice the hosts)' },
  'peer-listen': { type: 'string', help: 'cluster: ADDRESS:PORT of the peer listener, where other ingresses forward requests no host of theirs can serve (firewall it to the cluster network)' },
  'peer-url': { type: 'string', help: 'cluster: the URL peers reach --peer-listen at, e.g. http://10.0.0.5:8081 (default http://<peer-listen>)' },
  'detach-grace': { type: 'string', default: '30000', help: 'cluster: ms a host placed on other ingresses keeps its session here before it drains' },
  'cron-timeout': { type: 'string', default: '60000', help: 'ms a scheduled run (scheduled() and its ctx.waitUntil work) may take on a host before this ingress cancels it (CRON_TIMEOUT)' },
  ...ingressIceFlags,
  ...trafficFlags,
  ...metricsFlags,
  ...otlpFlags,
  ...timingFlags,
  ...logFlags,
} satisfies FlagSpec;

/** `dcdn launch`'s flags (all but --help). */
export const launchFlags = {
  signal: { type: 'string', short: 's', help: 'signaling address, e.g. http://signal.example.net:8787 (Chromium may always resolve its host)' },
  count: { type: 'string', short: 'n', default: '2', help: 'tabs to open' },
  name: { type: 'string', default: 'tab', help: 'tab name prefix (tabs are PREFIX-1, PREFIX-2, …)' },
  secret: secretFlag,
  token: { type: 'string', help: 'a host token instead of the secret (else DCDN_TOKEN)' },
  browser: { type: 'string', help: 'Chromium/Chrome executable (else DCDN_BROWSER, system paths, puppeteer cache)' },
  'heap-limit': { type: 'string', default: String(DEFAULT_HEAP_LIMIT_MB), help: 'memory limit per app sandbox (and per tab) in MiB, JavaScript heap, array buffers and WebAssembly memory included: an app over it is stopped (HOST_SANDBOX_CRASHED) and restarted' },
  'shutdown-grace': { ...shutdownGraceFlag, help: 'on SIGTERM/SIGINT (Ctrl-C), ms the tabs get to finish the requests they serve before Chromium closes; with the secret they are first marked draining (a second signal exits at once)' },
  'allow-host': {
    type: 'string',
    multiple: true,
    help: "another host name or address Chromium may resolve, e.g. each ingress's --public-ws host (WebSocket fallback), STUN/TURN servers named by host, or what apps fetch; globs like *.example.net, * for any (repeatable; default: loopback and the --signal host only)",
  },
  ...logFlags,
} satisfies FlagSpec;

/** `dcdn up`. */
export const upFlags = {
  port: { type: 'string', short: 'p', default: '8080', help: 'HTTP port of the ingress' },
  host: { type: 'string', default: '127.0.0.1', help: 'address the ingress and signaling listen on' },
  hosts: { type: 'string', short: 'n', default: '2', help: 'headless Chromium host tabs to launch (0 for none)' },
  transport: { type: 'string', short: 't', default: 'webrtc', help: 'how the ingress reaches hosts: webrtc or websocket' },
  rtc: { type: 'string', default: 'werift', help: 'WebRTC stack of the ingress: werift, or node-datachannel (native, optional dependency)' },
  app: { type: 'string', short: 'a', help: 'app module to serve as the default app, redeployed when it changes (default: the demo app, even after a run with --app; the summary says what is served)' },
  'signal-port': { type: 'string', default: '8787', help: 'port of the signaling service and host page' },
  browser: { type: 'string', help: 'Chromium/Chrome executable (else DCDN_BROWSER, system paths, puppeteer cache)' },
  'kv-store': { type: 'string', help: "handlers' KV store: sqlite:PATH, redis://HOST:PORT, postgres://USER@HOST/DB, or none (default: sqlite:$DCDN_HOME/kv.db)" },
  'kv-min-ttl': { type: 'string', default: '60', help: 'shortest KV expirationTtl accepted, in seconds' },
  ...sqlFlags,
  'base-domain': { type: 'string', default: 'localhost', help: 'apps answer on NAME.<base-domain>' },
  'heap-limit': { type: 'string', default: String(DEFAULT_HEAP_LIMIT_MB), help: 'memory limit per app sandbox (and per tab) in MiB, JavaScript heap, array buffers and WebAssembly memory included: an app over it is stopped (HOST_SANDBOX_CRASHED) and restarted' },
  'no-watch': { type: 'boolean', default: false, help: "with --app: don't redeploy when a file the app is built from changes" },
  quiet: { type: 'boolean', short: 'q', default: false, help: 'log warnings only (same as --log-level warn)' },
  'shutdown-grace': shutdownGraceFlag,
  'open-join': { type: 'boolean', default: false, help: 'let anyone join as a volunteer host from /join, without an invite' },
  'invite-grace': { type: 'string', default: String(INVITE_GRACE_MS), help: "ms a volunteer keeps serving after its invite expired (requests in flight finish); then its sessions end" },
  ...iceFlags,
  ...trafficFlags,
  ...metricsFlags,
  ...otlpFlags,
  ...timingFlags,
  ...logFlags,
  help: helpFlag,
} satisfies FlagSpec;

export const upUsage = 'dcdn up [--port 8080] [--hosts 2] [--transport webrtc|websocket] [--rtc werift|node-datachannel] [--app FILE]';
export const upDescription =
  'Runs a whole dcdn network on this machine: signaling, an ingress and N headless Chromium host\n' +
  'tabs serving the app. Prints where everything is; Ctrl-C (or SIGTERM) shuts it down cleanly.';

/** `dcdn tail`. */
export const tailFlags = {
  status: { type: 'string', help: 'only these statuses: 5xx, 404, or a comma list (e.g. 4xx,5xx)' },
  method: { type: 'string', help: 'only this method (GET, POST, …)' },
  search: { type: 'string', help: 'only requests whose method, URL, error code, request id or host contains TEXT' },
  'sampling-rate': { type: 'string', default: '1', help: 'share of matching requests shown, in (0, 1]' },
  timing: { type: 'boolean', help: 'time every request while attached: each event gets its waterfall, µs per hop (docs/performance.md)' },
  format: { type: 'string', default: 'pretty', help: 'pretty or json (one event per line)' },
  ingress: { type: 'string', multiple: true, help: 'an ingress to tail, e.g. http://127.0.0.1:8080 (repeatable; default: every ingress signaling knows)' },
  signal: { type: 'string', short: 's', help: 'signaling address, to find the ingresses (default: the local dcdn up)' },
  token: { type: 'string', help: 'operator token (else DCDN_TOKEN, one minted from DCDN_SECRET, or the local state)' },
} satisfies FlagSpec;

export const tailUsage = 'dcdn tail [APP] [--status 5xx] [--method M] [--search TEXT] [--sampling-rate R] [--format pretty|json] [--ingress URL]...';
export const tailDescription =
  'Streams the requests every ingress answers, live: time, method, URL, status, ms, app and version,\n' +
  'host (marked [volunteer] for a volunteer\'s browser), transport, error code and request id.\n' +
  'Filters run on the ingresses. Ctrl-C ends it. Needs an operator token.';
