/**
 * `dcdn deploy | apps | rollback | delete | secret`: the control API from the command line.
 * Against a local `dcdn up` they need nothing but their arguments (see state.ts).
 */
import { resolve } from 'node:path';
import { bundleApp } from '../browser-host/index.ts';
import type { CronRun } from '../protocol/index.ts';
import { mintToken } from '../signaling/index.ts';
import { DEFAULT_ROLLOUT_TIMEOUT_MS, describeRollout, type Rollout } from '../signaling/index.ts';
import { UsageError } from './args.ts';
import { buildErrorLines } from './bundle.ts';
import { signalUrls } from '../node/index.ts';
import { readState, stateFile } from './state.ts';
import { controlFlags, rolloutFlags } from './command-flags.ts';

export { controlFlags, rolloutFlags };

/**
 * Waits until every connected host that is sent `name` serves its active deployment, or one
 * failed, or `--rollout-timeout` passed, and prints `live on N/N hosts` (with the hosts that lag
 * or failed). Returns the exit code: 0 when every host is live (or none is connected), else 1.
 */
export async function awaitRollout(target: ControlTarget, name: string, values: Record<string, unknown>): Promise<number> {
  const raw = String(values['rollout-timeout'] ?? DEFAULT_ROLLOUT_TIMEOUT_MS / 1000);
  const seconds = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(seconds)) throw new UsageError(`--rollout-timeout takes seconds, got ${JSON.stringify(raw)}`);
  if (seconds === 0) return 0;
  // The server holds a wait of at most 120 s; longer timeouts ask again.
  const deadline = Date.now() + seconds * 1000;
  let rollout: Rollout;
  do {
    const waitMs = Math.max(0, Math.min(deadline - Date.now(), 120_000));
    rollout = await control<Rollout>(target, 'GET', `/v1/apps/${encodeURIComponent(name)}/rollout?wait=${Math.round(waitMs)}`);
  } while (!rollout.settled && Date.now() < deadline);
  if (rollout.total === 0) {
    process.stdout.write('no host is connected: hosts load it when they connect\n');
    return 0;
  }
  process.stdout.write(`${describeRollout(rollout)}\n`);
  if (rollout.live === rollout.total) return 0;
  const failed = rollout.hosts.some((h) => h.state === 'failed');
  process.stderr.write(`${failed ? 'some hosts could not load it (see their logs; `dcdn apps` shows what each serves)' : `not every host switched within ${seconds} s`}: requests to those hosts still get the version they serve\n`);
  return 1;
}

/** Where the control API is, how to authenticate, and where apps answer (for printing URLs). */
export interface ControlTarget {
  base: string;
  token: string;
  ingress?: string;
  /** Apps answer on NAME.baseDomain; unknown for a remote network unless given. */
  baseDomain?: string;
  pathPrefix: string;
  /**
   * What came from a local `dcdn up`'s state file rather than from flags or the environment,
   * so that a failure can say so (the state may be left from a `dcdn up` that is gone).
   */
  fromState?: { file: string; signal: boolean; token: boolean; pid: number; updatedAt: string };
}

/** Where the control API is and how to authenticate, from flags, environment, then local state. */
export function controlTarget(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): ControlTarget {
  const state = readState(env);
  const givenSignal = (values.signal as string | undefined) ?? env.DCDN_SIGNAL;
  const signal = givenSignal ?? state?.signal;
  if (!signal) throw new UsageError('no control plane: run `dcdn up` here first, or pass --signal URL');
  const givenToken =
    (values.token as string | undefined) ??
    env.DCDN_TOKEN ??
    (env.DCDN_SECRET ? mintToken(env.DCDN_SECRET, { role: 'operator', ttlSeconds: 600, sub: 'cli' }) : undefined);
  const token = givenToken ?? state?.operatorToken;
  if (!token) throw new UsageError('no operator token: pass --token, or set DCDN_TOKEN or DCDN_SECRET');
  const local = state && signalUrls(state.signal).http === signalUrls(signal).http;
  const ingress = (values.ingress as string | undefined) ?? env.DCDN_INGRESS ?? (local ? state.ingress : undefined);
  const baseDomain = (values['base-domain'] as string | undefined) ?? env.DCDN_BASE_DOMAIN ?? (local ? state.baseDomain : undefined);
  return {
    base: signalUrls(signal).http,
    token,
    ...(ingress ? { ingress: ingress.replace(/\/+$/, '') } : {}),
    ...(baseDomain ? { baseDomain } : {}),
    pathPrefix: (local ? state.pathPrefix : undefined) ?? '/@',
    ...(state && (givenSignal === undefined || givenToken === undefined)
      ? { fromState: { file: stateFile(env), signal: givenSignal === undefined, token: givenToken === undefined, pid: state.pid, updatedAt: state.updatedAt } }
      : {}),
  };
}

/** Calls the control API; throws an Error with the server's code and message when refused. */
export async function control<T>(target: ControlTarget, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${target.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw unreachable(target, err as Error);
  }
  // A body that is not JSON (a proxy's error page) leaves the status to speak for itself.
  const json = (await res.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  if (!res.ok) {
    const code = json?.error?.code;
    const from = target.fromState;
    if (from?.token && (code === 'SIG_TOKEN_INVALID' || code === 'SIG_TOKEN_EXPIRED')) {
      throw Object.assign(
        new Error(
          `the operator token from ${from.file} (written by the dcdn up of ${from.updatedAt}, pid ${from.pid}) is not valid for ${target.base}: ` +
            `that signaling is not that dcdn up's. Pass --token T (dcdn token --role operator --secret S) or set DCDN_SECRET`,
        ),
        { code },
      );
    }
    throw Object.assign(new Error(json?.error?.message ?? `HTTP ${res.status}`), { code });
  }
  return json as T;
}

/** The error for a control plane that does not answer, saying where its address came from. */
function unreachable(target: ControlTarget, err: Error): Error {
  const cause = err.cause as (Error & { code?: string }) | undefined;
  const why = cause?.code ?? cause?.message ?? err.message;
  const from = target.fromState;
  if (from?.signal) {
    const alive = isAlive(from.pid) ? `pid ${from.pid} is still running but does not answer` : `pid ${from.pid} is gone`;
    return new Error(
      `no dcdn up is running at ${target.base} (from ${from.file}, written ${from.updatedAt}; ${alive}; ${why}). ` +
        'Start one with `dcdn up`, or pass --signal URL --token T for another network',
    );
  }
  return new Error(`cannot reach the control plane at ${target.base} (${why}); is signaling running there? Check --signal (or DCDN_SIGNAL)`);
}

/** Whether a process exists (signal 0 checks without sending anything). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The URLs an app answers on. */
export function appUrls(target: ControlTarget, name: string): string[] {
  if (!target.ingress) return [];
  const u = new URL(target.ingress);
  const byPath = `${target.ingress}${target.pathPrefix}${name}/`;
  if (!target.baseDomain) return [byPath];
  return [`${u.protocol}//${name}.${target.baseDomain}${u.port ? `:${u.port}` : ''}/`, byPath];
}

export async function deploy(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [file] = values._;
  const name = values.name as string | undefined;
  if (!file || !name) throw new UsageError('usage: dcdn deploy FILE --name NAME');
  const target = controlTarget(values);
  const started = performance.now();
  let code: string;
  try {
    code = await bundleApp(resolve(file));
  } catch (err) {
    const lines = buildErrorLines(err).map((l) => `  ${l}`);
    throw Object.assign(new Error(`${file} does not build; nothing was deployed:\n${lines.join('\n')}`), { code: 'APP_BAD_BUNDLE' });
  }
  process.stderr.write(`bundled ${file} (${(code.length / 1024).toFixed(1)} KiB) in ${Math.round(performance.now() - started)} ms\n`);
  const vars: Record<string, string> = {};
  for (const pair of (values.var as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--var takes NAME=VALUE, got ${JSON.stringify(pair.slice(0, 40))}`);
    vars[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const crons = (values.cron as string[] | undefined) ?? [];
  const config = {
    vars,
    kv: (values.kv as string[] | undefined) ?? [],
    sql: (values.sql as string[] | undefined) ?? [],
    volunteers: values.volunteers === true,
    require: (values.require as string[] | undefined) ?? [],
    // Without --cron the live version's schedule is kept (as wrangler keeps triggers when its
    // config has no crons key); `--cron none` clears it (wrangler's `crons = []`).
    ...(crons.length === 0 ? {} : { crons: crons.length === 1 && crons[0] === 'none' ? [] : crons }),
  };
  const v = await control<{ version: number; sha256: string; config?: { crons?: string[] }; check?: { status: string; host?: string; ms?: number }; propagated?: Propagated }>(target, 'PUT', `/v1/apps/${encodeURIComponent(name)}`, {
    code,
    message: (values.message as string | undefined) ?? `from ${file}`,
    config,
    check: values['skip-check'] !== true,
  });
  const check = v.check;
  if (check?.status === 'ok') process.stderr.write(`loaded on host ${check.host} in ${check.ms} ms\n`);
  else if (check?.status === 'skipped') process.stderr.write('warning: no host that can run it is connected, so nobody checked that it loads\n');
  const notes = [Object.keys(vars).length ? `vars: ${Object.keys(vars).map((b) => `env.${b}`).join(', ')}` : '', config.kv.length ? `KV: ${config.kv.map((b) => `env.${b}`).join(', ')}` : '', config.sql.length ? `SQL: ${config.sql.map((b) => `env.${b}`).join(', ')}` : '', config.volunteers ? 'may run on volunteer hosts' : '', config.require.length ? `requires ${config.require.join(', ')}` : '', v.config?.crons?.length ? `cron (UTC): ${v.config.crons.join(', ')}` : ''].filter(Boolean);
  process.stdout.write(`deployed ${name} version ${v.version}${notes.length ? ` (${notes.join('; ')})` : ''}\n`);
  for (const url of appUrls(target, name)) process.stdout.write(`  ${url}\n`);
  if (worthSaying(v.propagated)) process.stdout.write(`${describePropagation(v.propagated)}\n`);
  return awaitRollout(target, name, values);
}

/** How far a control-plane write got before it answered (signaling/deploy-barrier.ts `Propagation`). */
type Propagated = { nodes: number; reached: number; atVersion: number; ms: number; complete: boolean };

/** A cluster's reach is worth a line; one signaling node that applied its own write is not (the output stays as it was). */
function worthSaying(p: Propagated | undefined): p is Propagated {
  return p !== undefined && (p.nodes > 1 || !p.complete);
}

/** `reached 2 of 2 signaling nodes in 14 ms`, and what it means when some lag. */
export function describePropagation(p: Propagated): string {
  const line = `reached ${p.reached} of ${p.nodes} signaling node${p.nodes === 1 ? '' : 's'} in ${p.ms} ms`;
  if (p.complete) return line;
  return `${line} (the others have not applied control version ${p.atVersion} yet; they catch up by their 10 s poll, or when the control store is back)`;
}

export async function apps(values: Record<string, unknown>): Promise<number> {
  const target = controlTarget(values);
  const { apps: list } = await control<{
    apps: Array<{
      name: string;
      activeVersion: number;
      versions: Array<{ version: number; createdAt: string; size: number; message: string; config?: { kv: string[]; sql?: string[]; volunteers: boolean; require: string[] } }>;
      secrets: string[];
      cron?: { schedule: string[]; lastRun: CronRun | null };
      hosts?: Array<{ host: string; version: number; state: string }>;
    }>;
  }>(
    target,
    'GET',
    '/v1/apps',
  );
  // The ingress is optional here (a remote network's may be unknown or down): without its
  // health the host count is printed as unknown rather than failing the listing.
  const health = target.ingress ? ((await fetch(`${target.ingress}/_dcdn/health`).then((r) => r.json()).catch(() => null)) as { hosts?: unknown[] } | null) : null;
  if (values.json) {
    process.stdout.write(JSON.stringify({ apps: list, hosts: health?.hosts?.length ?? null }, null, 2) + '\n');
    return 0;
  }
  if (list.length === 0) {
    process.stdout.write('no apps deployed\n');
    return 0;
  }
  for (const a of list) {
    const active = a.versions.find((v) => v.version === a.activeVersion);
    const cfg = active?.config;
    const extras = [a.secrets.length ? `secrets: ${a.secrets.join(', ')}` : '', cfg?.kv.length ? `kv: ${cfg.kv.join(', ')}` : '', cfg?.sql?.length ? `sql: ${cfg.sql.join(', ')}` : '', cfg?.volunteers ? 'volunteers' : '', cfg?.require.length ? `requires: ${cfg.require.join(', ')}` : ''].filter(Boolean);
    process.stdout.write(`${a.name}  version ${a.activeVersion} of ${a.versions.length}  (${active?.createdAt ?? '?'})${extras.map((e) => `  ${e}`).join('')}\n`);
    for (const v of a.versions.slice(-5)) process.stdout.write(`    ${v.version === a.activeVersion ? '*' : ' '} v${v.version}  ${v.createdAt}  ${(v.size / 1024).toFixed(1)} KiB  ${v.message}\n`);
    process.stdout.write(`    hosts: ${describeHosts(a.hosts ?? [])}\n`);
    if (a.cron?.schedule.length || a.cron?.lastRun) process.stdout.write(`    cron: ${describeCron(a.cron.schedule, a.cron.lastRun)}\n`);
    for (const url of appUrls(target, a.name)) process.stdout.write(`    ${url}\n`);
  }
  if (health?.hosts) process.stdout.write(`hosts connected to the local ingress: ${health.hosts.length} (volunteers serve only --volunteers apps; see dcdn hosts list)\n`);
  return 0;
}

export async function rollback(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [name] = values._;
  if (!name) throw new UsageError('usage: dcdn rollback NAME [--to VERSION]');
  const to = values.to === undefined ? undefined : Number(values.to);
  if (to !== undefined && !(Number.isInteger(to) && to > 0)) throw new UsageError('--to must be a version number');
  const target = controlTarget(values);
  const v = await control<{ version: number; propagated?: Propagated }>(target, 'POST', `/v1/apps/${encodeURIComponent(name)}/rollback`, to === undefined ? {} : { to });
  process.stdout.write(`${name} is now at version ${v.version}\n`);
  if (worthSaying(v.propagated)) process.stdout.write(`${describePropagation(v.propagated)}\n`);
  return awaitRollout(target, name, values);
}

export async function remove(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [name] = values._;
  if (!name) throw new UsageError('usage: dcdn delete NAME');
  await control(controlTarget(values), 'DELETE', `/v1/apps/${encodeURIComponent(name)}`);
  process.stdout.write(`deleted ${name} and all its versions\n`);
  return 0;
}

/** `dcdn secret put NAME SECRET` reads the value from stdin, so it never lands in shell history. */
export async function secret(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [action, name, key] = values._;
  if ((action !== 'put' && action !== 'delete') || !name || !key) throw new UsageError('usage: dcdn secret put|delete NAME SECRET  (put reads the value from stdin)');
  const target = controlTarget(values);
  const path = `/v1/apps/${encodeURIComponent(name)}/secrets/${encodeURIComponent(key)}`;
  if (action === 'delete') {
    await control(target, 'DELETE', path);
    process.stdout.write(`deleted secret ${key} of ${name}\n`);
    return awaitRollout(target, name, values);
  }
  let value: string;
  if (process.stdin.isTTY) {
    process.stderr.write(`value for ${key} (not shown; Enter ends it): `);
    value = await readHiddenLine(process.stdin);
    process.stderr.write('\n');
  } else {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    value = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  await control(target, 'PUT', path, { value });
  process.stdout.write(`stored secret ${key} of ${name} (${Buffer.byteLength(value)} bytes; it is never printed back)\n`);
  // Hosts reload the app with the new env: wait for that as for a deploy.
  return awaitRollout(target, name, values);
}

/** One line typed at a terminal, without echoing it (a secret must not stay on the screen). */
function readHiddenLine(stdin: NodeJS.ReadStream): Promise<string> {
  return new Promise((resolve) => {
    let value = '';
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    const done = (text: string) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      resolve(text);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done(value);
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          process.stderr.write('\n');
          process.exit(130);
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData).resume();
  });
}

/** "2 serving v3, 1 loading v4 (tab-2)": what the hosts report, grouped by version and state. */
export function describeHosts(hosts: Array<{ host: string; version: number; state: string }>): string {
  if (hosts.length === 0) return 'none reports it loaded';
  const groups = new Map<string, string[]>();
  for (const h of hosts) {
    const key = `${h.state} v${h.version}`;
    groups.set(key, [...(groups.get(key) ?? []), h.host]);
  }
  return [...groups]
    .sort(([a], [b]) => (a.startsWith('serving') === b.startsWith('serving') ? a.localeCompare(b) : a.startsWith('serving') ? -1 : 1))
    .map(([key, names]) => `${names.length} ${key}${key.startsWith('serving') ? '' : ` (${names.slice(0, 5).join(', ')})`}`)
    .join(', ');
}

/** `*\/5 * * * * (UTC); last run 2026-…Z ok on host-1 in 12 ms`, or the failure's code and first line. */
export function describeCron(schedule: string[], last: CronRun | null): string {
  const parts = [schedule.length ? `${schedule.join(', ')} (UTC)` : 'no schedule'];
  parts.push(last ? `last run ${describeRun(last)}` : 'not run yet');
  return parts.join('; ');
}

/** One run in a line: when, ok or the error code and the error's first line, where, how long. */
export function describeRun(run: CronRun): string {
  const where = run.host ? ` on ${run.host}` : '';
  const what = run.ok ? 'ok' : `failed ${run.code ?? ''}: ${(run.error ?? '').split('\n')[0]!.slice(0, 200)}`;
  return `${run.at} (${run.trigger === 'manual' ? 'dcdn cron trigger' : `tick ${new Date(run.scheduledTime).toISOString()}`}) ${what}${where} in ${run.ms} ms`;
}
