/**
 * `dcdn tail [APP]`: the live requests of a network, from every ingress at once. Each ingress
 * streams its finished requests over `/_dcdn/tail` (ingress/tail.ts), filtered there; this
 * command finds the ingresses (flags, or signaling's peer list), merges their streams and
 * prints them for people (`--format pretty`) or as JSON lines.
 *
 * A reader that stops reading (`dcdn tail | less`, paused) stops this process reading its
 * sockets; the ingresses then drop events for it and say how many, and requests never wait.
 */
import { WebSocket } from 'ws';
import { UsageError } from './args.ts';
import { operatorIngresses } from './operator-ingresses.ts';

// With the other commands' flags, so that help loads nothing heavy; kept importable from here.
export { tailDescription, tailFlags, tailUsage } from './command-flags.ts';

/** Resolved from flags, environment and local state. */
interface TailTarget {
  ingresses: string[];
  token: string;
  query: string;
  format: 'pretty' | 'json';
}

export async function tail(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const target = await resolveTarget(values, env);
  const out = process.stdout;
  const sockets = new Set<WebSocket>();
  let stopping = false;
  let paused = false;
  /** Stops reading every socket until stdout drains: the ingresses drop for us instead. */
  const write = (text: string) => {
    if (out.write(text) || paused) return;
    paused = true;
    for (const ws of sockets) rawSocket(ws)?.pause();
    out.once('drain', () => {
      paused = false;
      for (const ws of sockets) rawSocket(ws)?.resume();
    });
  };
  const note = (text: string) => process.stderr.write(`${text}\n`);

  const connect = (base: string) => {
    if (stopping) return;
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/_dcdn/tail${target.query}`, { headers: { authorization: `Bearer ${target.token}` } });
    sockets.add(ws);
    ws.on('unexpected-response', (_req, res) => {
      const code = res.headers['dcdn-error'];
      note(`dcdn tail: ${base} refused the tail: ${res.statusCode}${code ? ` ${String(code)}` : ''}`);
      if (res.statusCode === 401 || res.statusCode === 400) stop(1);
    });
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const event = JSON.parse(String(data)) as Record<string, unknown>;
      if (event.type === 'hello') return note(`tailing ${base}`);
      if (event.type === 'dropped') return note(`(${String(event.count)} requests not shown: this reader fell behind ${base})`);
      if (event.type !== 'request' && event.type !== 'log') return;
      write(target.format === 'json' ? `${JSON.stringify(event)}\n` : `${prettyEvent(event)}\n`);
    });
    ws.on('close', () => {
      sockets.delete(ws);
      if (stopping) return;
      // An ingress restarting or briefly away: keep trying, as the user asked to see it.
      setTimeout(() => connect(base), 2000).unref();
    });
  };

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const ws of sockets) ws.close(1000, 'done');
    resolveDone(code);
  };
  process.once('SIGINT', () => stop(0));
  process.once('SIGTERM', () => stop(0));
  for (const base of target.ingresses) connect(base);
  // Keep the process alive while the sockets (or the reconnect timers, unref'd) are idle.
  const keepAlive = setInterval(() => {}, 60_000);
  const code = await done;
  clearInterval(keepAlive);
  return code;
}

/**
 * A `request` event for people: its line ({@link pretty}), then the handler's console lines
 * indented under it, then what was cut. A `log` event (a line written after the response, by
 * `ctx.waitUntil()` work) is one line naming its request.
 */
export function prettyEvent(e: Record<string, unknown>): string {
  if (e.type === 'log') {
    const line = e.line as { level: string; text: string } | null;
    const cut = e.cut as { lines: number; bytes: number } | null;
    const time = typeof e.logTime === 'string' ? e.logTime.slice(11, 23) : '';
    const host = e.host ? `${String(e.host)}${e.volunteer ? ' [volunteer]' : ''}` : 'no host';
    const what = line ? consoleLine(line.level, line.text, '  ').trimStart() : cutNote(cut);
    return `${time} (after the response) ${what} [${String(e.app)}${e.version != null ? `@${String(e.version)}` : ''} ${host} id=${String(e.requestId)}]`;
  }
  const out = [pretty(e)];
  for (const l of (e.logs as Array<{ level: string; text: string }> | undefined) ?? []) out.push(consoleLine(l.level, l.text, '  '));
  const cut = e.logsCut as { lines: number; bytes: number } | null | undefined;
  if (cut) out.push(`  ${cutNote(cut)}`);
  const timing = e.timing as Record<string, number> | null | undefined;
  if (timing) out.push(`  timing µs: ${Object.entries(timing).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}`);
  return out.join('\n');
}

/** `  warn  text`, continuation lines (a stack) indented under the text. */
function consoleLine(level: string, text: string, indent: string): string {
  const label = level.padEnd(9);
  return `${indent}${label} ${text.replace(/\n/g, `\n${indent}${' '.repeat(label.length + 1)}`)}`;
}

function cutNote(cut: { lines: number; bytes: number } | null): string {
  if (!cut) return '';
  return `(${cut.lines} console line${cut.lines === 1 ? '' : 's'}, ${cut.bytes} bytes, cut: over the per-request limit)`;
}

/** One line for people: time, method, URL, status, ms, app@version, host, transport, code, id. */
export function pretty(e: Record<string, unknown>): string {
  const time = typeof e.time === 'string' ? e.time.slice(11, 23) : '';
  const status = Number(e.status);
  const app = e.app ? `${String(e.app)}${e.version != null ? `@${String(e.version)}` : ''}` : '-';
  const host = e.host ? `${String(e.host)}${e.volunteer ? ' [volunteer]' : ''}` : 'no host';
  const parts = [time, String(e.method), String(e.url), status === 0 ? 'client gone' : String(status), `${String(e.ms)}ms`, app, host, String(e.transport ?? '-')];
  if (e.code) parts.push(String(e.code));
  parts.push(`id=${String(e.requestId)}`);
  return parts.join(' ');
}

async function resolveTarget(values: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<TailTarget> {
  const format = String(values.format ?? 'pretty');
  if (format !== 'pretty' && format !== 'json') throw new UsageError(`--format must be pretty or json, got ${format}`);
  const rate = Number(values['sampling-rate'] ?? 1);
  if (!(rate > 0 && rate <= 1)) throw new UsageError(`--sampling-rate must be a number in (0, 1], got ${String(values['sampling-rate'])}`);
  const status = values.status as string | undefined;
  if (status !== undefined && !status.split(',').every((s) => /^([1-5]xx|[1-5]\d\d|0)$/i.test(s.trim()))) throw new UsageError(`--status must be like 5xx, 404 or 4xx,5xx, got ${status}`);
  const positionals = (values._ as string[] | undefined) ?? [];
  if (positionals.length > 1) throw new UsageError(`one APP at most, got ${positionals.join(' ')}`);
  const q = new URLSearchParams();
  if (positionals[0]) q.set('app', positionals[0]);
  if (status) q.set('status', status);
  if (values.method) q.set('method', String(values.method).toUpperCase());
  if (values.search) q.set('search', String(values.search));
  if (rate < 1) q.set('sampling', String(rate));
  if (values.timing) q.set('timing', '1');
  const { token, ingresses } = await operatorIngresses(values, env, { sub: 'tail', ttlSeconds: 24 * 3600, verb: 'tail' });
  const query = q.toString();
  return { ingresses: [...new Set(ingresses)], token, query: query ? `?${query}` : '', format };
}

function rawSocket(ws: WebSocket): { pause(): void; resume(): void } | undefined {
  return (ws as unknown as { _socket?: { pause(): void; resume(): void } })._socket;
}
