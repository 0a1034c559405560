/**
 * `dcdn`: finds the command, parses its flags and runs it. Only flag specs and help text are
 * loaded up front (command-flags.ts); each command's implementation is imported when it runs,
 * so `dcdn --help` loads no part of the network.
 */
import { readFileSync } from 'node:fs';
import { helpText, parseFlags, UsageError, type FlagSpec } from './args.ts';
import {
  controlFlags,
  cronDescription,
  cronUsage,
  helpFlag as help,
  hostsFlags,
  ingressFlags,
  inviteFlags,
  kvDescription,
  kvFlags,
  kvUsage,
  launchFlags,
  rolloutFlags,
  secretFlag,
  signalFlags,
  tailDescription,
  tailFlags,
  tailUsage,
  upDescription,
  upFlags,
  upUsage,
} from './command-flags.ts';
import { sqlCommandFlags, sqlDescription, sqlUsage } from './sql-flags.ts';
import { asFlagError, withFlags } from './option-flags.ts';
import { logOptionsFromFlags } from './log-flags.ts';

interface Command {
  /** One line for the command list. */
  summary: string;
  /** Whether it takes positional arguments. */
  positionals?: boolean;
  usage: string;
  description: string;
  flags: FlagSpec;
  run(values: Record<string, unknown>): Promise<number>;
}

const commands: Record<string, Command> = {
  up: { summary: 'run signaling, an ingress and headless Chromium hosts on this machine', usage: upUsage, description: upDescription, flags: upFlags, run: async (v) => (await import('./up.ts')).up(v as never) },

  signal: {
    summary: 'run the signaling service and host page alone',
    usage: 'dcdn signal [--port 8787] [--secret S] [--app FILE] [--stun URL] [--turn URL --turn-secret S] [--cluster redis://HOST:PORT [--cluster-name N] [--node-id ID] [--region R]] [--attach K]',
    description:
      'Runs the signaling service alone: the WebSocket broker between ingresses and hosts,\nthe host page (/host) with the app it serves, and the volunteer join page (/join?invite=TOKEN).\n' +
      'With --cluster it is one of several signaling nodes sharing presence and relay through Redis\n' +
      '(docs/cluster.md): hosts and ingresses on any node see each other.',
    flags: { ...signalFlags, help },
    run: async (v) => (await import('./part-commands.ts')).signal(v),
  },

  ingress: {
    summary: 'run an ingress alone, joining signaling at URL',
    usage: 'dcdn ingress --signal URL [--port 8080] [--host ADDR] [--ice-address ADDR]... [--public-ws URL] [--transport webrtc|websocket] [--secret S | --token T]',
    description:
      'Runs an ingress alone: joins signaling at URL, connects to every host and forwards HTTP to them.\n' +
      'WebRTC is loopback-only unless --ice-address names an address hosts can reach; hosts elsewhere\n' +
      'also need --host 0.0.0.0 (or that address) and --public-ws for the WebSocket fallback\n' +
      '(docs/deploy-multi-machine.md). STUN/TURN come from signaling unless --stun/--turn/--ice-lite.',
    flags: { ...ingressFlags, help },
    run: async (v) => (await import('./part-commands.ts')).ingress(v),
  },

  launch: {
    summary: 'launch headless Chromium host tabs that join signaling at URL',
    usage: 'dcdn launch --signal URL [--count 2] [--secret S | --token T] [--allow-host NAME]... [--browser PATH]',
    description:
      'Launches headless Chromium with COUNT host tabs that join the network at URL. Chromium resolves\n' +
      'only loopback and the --signal host; list with --allow-host whatever else the tabs must reach.',
    flags: { ...launchFlags, help },
    run: async (v) => (await import('./part-commands.ts')).launch(v),
  },

  invite: {
    summary: 'print a join link for volunteer hosts (scoped, expiring)',
    usage: 'dcdn invite [--apps a,b] [--ttl 24h] [--signal URL] [--token T]',
    description:
      'Mints a volunteer invite on signaling and prints its join link. Whoever opens it can lend their\n' +
      'browser as a host until it expires; it runs only apps deployed with --volunteers (of those, only\n' +
      '--apps when given) and never gets their secrets, cookies or Authorization headers.',
    flags: { ...inviteFlags, help },
    run: async (v) => (await import('./host-commands.ts')).invite(v),
  },

  hosts: {
    positionals: true,
    summary: 'list, drain, resume and ban hosts',
    usage: 'dcdn hosts list|drain|resume|ban|bans|unban [ID] [--reason R] [--invite] [--address]',
    description:
      'list            connected hosts: trust (operator or volunteer), state, address, capabilities\n' +
      'drain ID        send a host no new requests (in-flight ones finish); resume ID undoes it\n' +
      'ban ID          disconnect a host and refuse its tab from now on (--invite: every tab of its\n' +
      '                invite too; --address: its IP address too); bans lists them, unban BAN-ID lifts one',
    flags: { ...hostsFlags, help },
    run: async (v) => (await import('./host-commands.ts')).hosts(v as never),
  },

  tail: {
    positionals: true,
    summary: 'stream the requests of every ingress live (filters: status, method, text)',
    usage: tailUsage,
    description: tailDescription,
    flags: { ...tailFlags, help },
    run: async (v) => (await import('./tail-command.ts')).tail(v),
  },

  kv: {
    positionals: true,
    summary: "read and write an app's KV namespace (get, put, delete, list)",
    usage: kvUsage,
    description: kvDescription,
    flags: { ...kvFlags, help },
    run: async (v) => (await import('./kv-command.ts')).kv(v as never),
  },

  sql: {
    positionals: true,
    summary: "run SQL in an app's database; migrations, export and import",
    usage: sqlUsage,
    description: sqlDescription,
    flags: { ...sqlCommandFlags, help },
    run: async (v) => (await import('./sql-command.ts')).sql(v as never),
  },

  cache: {
    positionals: true,
    summary: "purge an app's responses from every ingress's HTTP cache",
    usage: 'dcdn cache purge APP [--prefix /PATH] [--ingress URL]... [--signal URL] [--token T]',
    description:
      'Drops the responses the ingresses hold in their HTTP caches for APP (all, or those whose path\n' +
      'starts with --prefix), on every ingress signaling knows or each --ingress. A deploy or rollback\n' +
      'purges its app by itself; this is for content that changed without one (docs/cache.md).\n' +
      'Needs an operator token.',
    flags: {
      prefix: { type: 'string', help: 'only paths starting with this, e.g. /images/' },
      ingress: { type: 'string', multiple: true, help: 'an ingress to purge, e.g. http://127.0.0.1:8080 (repeatable; default: every ingress signaling knows)' },
      signal: { type: 'string', short: 's', help: 'signaling address, to find the ingresses (default: the local dcdn up)' },
      token: { type: 'string', help: 'operator token (else DCDN_TOKEN, one minted from DCDN_SECRET, or the local state)' },
      help,
    },
    run: async (v) => (await import('./cache-command.ts')).cache(v),
  },

  deploy: {
    positionals: true,
    summary: 'bundle an app (npm imports included) and deploy it as a new version',
    usage: 'dcdn deploy FILE --name NAME [--var NAME=VALUE]... [--kv BINDING]... [--sql BINDING]... [--cron EXPR]... [--volunteers] [--require webgpu] [--message M] [--skip-check] [--rollout-timeout 30] [--signal URL] [--token T]',
    description:
      'Bundles FILE with esbuild (imports resolved from its own folder), uploads it as a new version of\n' +
      'app NAME, has a connected host load it, then makes it live, waits until every connected host\n' +
      'serves it (--rollout-timeout; prints "live on N/N hosts" or which host lags) and prints its URLs.\n' +
      'Against a local dcdn up it needs nothing else. A bundle that does not build, is refused, or\n' +
      'throws while loading (APP_LOAD_FAILED, with the host\'s error) leaves the running version untouched.\n' +
      '--kv CACHE gives the handler env.CACHE, a KV namespace of the app\'s own (docs/kv.md).\n' +
      '--sql DB gives the handler env.DB, a Postgres database of the app\'s own with D1\'s API (docs/sql.md).\n' +
      '--cron "*/5 * * * *" calls its scheduled(controller, env, ctx) once per tick for the whole network,\n' +
      'in UTC (repeatable; docs/apps.md). Without --cron the live schedule is kept; --cron none clears it.',
    flags: {
      name: { type: 'string', short: 'n', help: 'app name (a DNS label)' },
      message: { type: 'string', short: 'm', help: 'note kept with the version' },
      var: { type: 'string', multiple: true, help: 'a plain variable, env.NAME (NAME=VALUE, repeatable; not secret: use dcdn secret put for that)' },
      kv: { type: 'string', multiple: true, help: 'a KV binding, env.BINDING (repeatable)' },
      sql: { type: 'string', multiple: true, help: 'a SQL binding, env.BINDING: a database with D1\'s API (repeatable)' },
      cron: { type: 'string', multiple: true, help: 'a cron trigger in UTC: five fields, or six with seconds first (repeatable; "none" clears the schedule; default: keep the live one)' },
      volunteers: { type: 'boolean', default: false, help: 'let volunteer hosts run it (they never get its secrets, cookies or Authorization)' },
      require: { type: 'string', multiple: true, help: 'serve only from hosts with this capability: webgpu (repeatable)' },
      'skip-check': { type: 'boolean', default: false, help: 'make it live without a host loading it first' },
      ...rolloutFlags,
      ...controlFlags,
      help,
    },
    run: async (v) => (await import('./app-commands.ts')).deploy(v as never),
  },
  apps: {
    summary: 'list apps, their versions and URLs',
    usage: 'dcdn apps [--json]',
    description: 'Lists the deployed apps with their versions (* marks the live one), secret names, URLs, and\ntheir cron schedule with the last scheduled run (when, ok or the error, which host).',
    flags: { json: { type: 'boolean', default: false, help: 'print JSON' }, ...controlFlags, help },
    run: async (v) => (await import('./app-commands.ts')).apps(v),
  },
  cron: {
    positionals: true,
    summary: "run an app's scheduled() handler once now",
    usage: cronUsage,
    description: cronDescription,
    flags: { json: { type: 'boolean', default: false, help: 'print the run as JSON' }, ...controlFlags, help },
    run: async (v) => (await import('./cron-command.ts')).cron(v as never),
  },
  rollback: {
    positionals: true,
    summary: 'make an earlier version of an app live again',
    usage: 'dcdn rollback NAME [--to VERSION] [--rollout-timeout 30]',
    description: 'Makes the version before the live one (or VERSION) live again; nothing is deleted.\nWaits until every connected host serves it (--rollout-timeout).',
    flags: { to: { type: 'string', help: 'version to go back to' }, ...rolloutFlags, ...controlFlags, help },
    run: async (v) => (await import('./app-commands.ts')).rollback(v as never),
  },
  delete: {
    positionals: true,
    summary: 'delete an app and all its versions',
    usage: 'dcdn delete NAME',
    description: 'Deletes app NAME, all its versions and secrets; hosts stop serving it at once.',
    flags: { ...controlFlags, help },
    run: async (v) => (await import('./app-commands.ts')).remove(v as never),
  },
  secret: {
    positionals: true,
    summary: "set or delete an app's secret (read from stdin)",
    usage: 'dcdn secret put|delete NAME SECRET',
    description: "Sets env.SECRET for app NAME from standard input, or deletes it. Values are never printed back.\nWaits until every connected host has reloaded the app with it (--rollout-timeout).",
    flags: { ...rolloutFlags, ...controlFlags, help },
    run: async (v) => (await import('./app-commands.ts')).secret(v as never),
  },

  token: {
    summary: 'print a signed token for a host, an ingress or an operator (deploy, hosts, invites)',
    usage: 'dcdn token --role host|ingress|operator [--ttl 86400] [--sub NAME] [--secret S]',
    description: 'Prints a signed token for a host, an ingress or an operator (deploys), for parts on other machines.',
    flags: {
      role: { type: 'string', short: 'r', help: 'host, ingress or operator' },
      ttl: { type: 'string', default: '86400', help: 'seconds until it expires' },
      sub: { type: 'string', help: 'who it is for (shown in logs)' },
      secret: secretFlag,
      help,
    },
    run: async (v) => (await import('./part-commands.ts')).token(v),
  },
};

/** The version in package.json: the one source of truth, read when asked. */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function topHelp(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  rows.push(`  ${'bench'.padEnd(8)} measure data channel vs WebSocket and dcdn vs direct servers`);
  return `dcdn: serve the web from browser tabs\n\nUsage: dcdn <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun dcdn <command> --help for a command's options; dcdn --version prints the version.\n`;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // The benchmark parses its own flags (bench/run.ts) and loads its tools only when asked.
  if (name === 'bench') return (await import('../bench/index.ts')).runBench(rest);
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`dcdn ${version()} (node ${process.versions.node})\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topHelp());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`dcdn: unknown command '${name}'\n\n${topHelp()}`);
    return 2;
  }
  try {
    const values = parseFlags(rest, command.flags);
    if (values.help) {
      process.stdout.write(helpText(command.usage, command.description, command.flags));
      return 0;
    }
    if (!command.positionals && values._.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(values._[0])}`);
    // $DCDN_HOME owner-only before the command touches it, warnings in the command's log format.
    // Loaded here, not up front: state.ts reaches signaling and log.ts pino, which help must not load.
    const [{ secureStateDir }, { createLog, createLogger }] = await Promise.all([import('./state.ts'), import('./log.ts')]);
    secureStateDir(createLog('dcdn', createLogger(logOptionsFromFlags(values))));
    return await command.run(values);
  } catch (thrown) {
    const err = asFlagError(thrown);
    if (err instanceof UsageError) {
      process.stderr.write(`dcdn ${name}: ${err.message}\n\n${helpText(command.usage, command.description, command.flags)}`);
      return 2;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`dcdn ${name}: ${e.code ? `[${e.code}] ` : ''}${withFlags(e.message)}\n`);
    return 1;
  }
}
