/**
 * `dcdn invite` and `dcdn hosts list|drain|resume|ban|bans|unban`: the operator's side of
 * volunteer hosts, over the control API on signaling (signaling/hosts-api.ts).
 */
import { UsageError } from './args.ts';
import { control, controlTarget } from './app-commands.ts';
import { hostsFlags, inviteFlags } from './command-flags.ts';
import type { HostSummary } from '../signaling/index.ts';

export { hostsFlags, inviteFlags };

/** Parses `90m`, `24h`, `7d`, `30s` or plain seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`--ttl must look like 90m, 24h, 7d or a number of seconds, got ${JSON.stringify(text)}`);
  return Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86_400 } as const)[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

export async function invite(values: Record<string, unknown>): Promise<number> {
  const target = controlTarget(values);
  const apps = typeof values.apps === 'string' ? values.apps.split(',').map((a) => a.trim()).filter(Boolean) : [];
  const ttlSeconds = parseDuration(String(values.ttl));
  const made = await control<{ token: string; expiresAt: string; path: string; apps: string[]; warnings?: string[] }>(target, 'POST', '/v1/invites', { apps, ttlSeconds });
  const link = `${target.base}${made.path}`;
  const warnings = made.warnings ?? [];
  if (values.json) {
    process.stdout.write(JSON.stringify({ link, token: made.token, expiresAt: made.expiresAt, apps: made.apps, warnings }, null, 2) + '\n');
    return 0;
  }
  process.stdout.write(`${link}\n`);
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  process.stderr.write(
    `Anyone with this link can join as a volunteer host until ${made.expiresAt}, serving ${apps.length ? apps.join(', ') : 'every app deployed with --volunteers'}.\n` +
      'Volunteer hosts never get secrets, cookies or Authorization headers. See them with: dcdn hosts list\n',
  );
  return 0;
}

/** A host as GET /v1/hosts lists it (`ingresses` is missing from signaling nodes older than the field). */
type HostRow = Omit<HostSummary, 'ingresses'> & { ingresses?: string[] };

export async function hosts(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [action = 'list', id] = values._;
  const target = controlTarget(values);
  const needId = () => {
    if (!id) throw new UsageError(`usage: dcdn hosts ${action} ID   (IDs are in dcdn hosts list)`);
    return encodeURIComponent(id);
  };
  switch (action) {
    case 'list': {
      const { hosts: list } = await control<{ hosts: HostRow[] }>(target, 'GET', '/v1/hosts');
      if (values.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return 0;
      }
      if (list.length === 0) {
        process.stdout.write('no hosts connected\n');
        return 0;
      }
      // Cluster mode: which signaling node holds each host (one machine: the column is left out).
      const manyNodes = new Set(list.map((h) => h.node)).size > 1;
      const rows = list.map((h) => [
        ...(manyNodes ? [`${h.node ?? '-'}${h.region ? ` (${h.region})` : ''}`] : []),
        h.id.slice(0, 8),
        h.name || '-',
        h.volunteer ? `volunteer${h.apps ? ` (${h.apps.join(',')})` : ''}` : 'operator',
        h.draining ? 'draining' : 'serving',
        // Where placement puts it (K of the live ingresses, as every ingress computes it); a signaling node older than the field sends none.
        (h.ingresses ?? []).join(',') || '-',
        h.address || '-',
        [h.cores ? `${h.cores} cores` : '', h.memoryGiB ? `${h.memoryGiB} GiB` : '', ...h.capabilities].filter(Boolean).join(', ') || '-',
        browserOf(h.userAgent),
        h.since.slice(0, 19).replace('T', ' '),
      ]);
      const head = [...(manyNodes ? ['NODE'] : []), 'ID', 'NAME', 'TRUST', 'STATE', 'INGRESSES', 'ADDRESS', 'CAPABILITIES', 'BROWSER', 'SINCE (UTC)'];
      const widths = head.map((_, i) => Math.max(head[i]!.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
      process.stderr.write('(drain, resume or ban a host by ID; the first 8 characters are enough)\n');
      return 0;
    }
    case 'drain':
    case 'resume': {
      const full = await resolveId(target, needId());
      await control(target, 'POST', `/v1/hosts/${full}/drain`, { draining: action === 'drain' });
      process.stdout.write(action === 'drain' ? `drained ${id}: no new requests go to it; those in flight finish\n` : `resumed ${id}\n`);
      return 0;
    }
    case 'ban': {
      const full = await resolveId(target, needId());
      const done = await control<{ bans: Array<{ id: string; kind: string; value: string }> }>(target, 'POST', `/v1/hosts/${full}/ban`, {
        ...(values.reason ? { reason: values.reason } : {}),
        invite: values.invite === true,
        address: values.address === true,
      });
      process.stdout.write(`banned ${id} and disconnected it; bans: ${done.bans.map((b) => `${b.id} (${b.kind} ${b.value})`).join(', ')}\n`);
      return 0;
    }
    case 'bans': {
      const { bans } = await control<{ bans: Array<{ id: string; kind: string; value: string; reason: string; createdAt: string }> }>(target, 'GET', '/v1/bans');
      if (values.json) process.stdout.write(JSON.stringify(bans, null, 2) + '\n');
      else if (bans.length === 0) process.stdout.write('no bans\n');
      else for (const b of bans) process.stdout.write(`${b.id}  ${b.kind.padEnd(7)}  ${b.value}  ${b.createdAt.slice(0, 19)}${b.reason ? `  ${b.reason}` : ''}\n`);
      return 0;
    }
    case 'unban':
      await control(target, 'DELETE', `/v1/bans/${needId()}`);
      process.stdout.write(`lifted ban ${id}\n`);
      return 0;
    default:
      throw new UsageError('usage: dcdn hosts list|drain|resume|ban|bans|unban [ID]');
  }
}

/** Accepts a unique prefix of a host's signaling id, as `dcdn hosts list` prints them. */
async function resolveId(target: ReturnType<typeof controlTarget>, prefix: string): Promise<string> {
  const { hosts: list } = await control<{ hosts: HostRow[] }>(target, 'GET', '/v1/hosts');
  const matches = list.filter((h) => h.id.startsWith(decodeURIComponent(prefix)));
  if (matches.length === 1) return encodeURIComponent(matches[0]!.id);
  throw Object.assign(new Error(matches.length === 0 ? `no connected host has an id starting with ${decodeURIComponent(prefix)}` : `${decodeURIComponent(prefix)} matches ${matches.length} hosts; give more of the id`), { code: 'SIG_UNKNOWN_PEER' });
}

function browserOf(ua: string | null): string {
  if (!ua) return '-';
  const m = /(HeadlessChrome|Chrome|Firefox|Safari)\/(\d+)/.exec(ua);
  return m ? `${m[1]} ${m[2]}` : ua.slice(0, 20);
}
