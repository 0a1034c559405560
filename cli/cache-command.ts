/**
 * `dcdn cache purge APP [--prefix PATH]`: drops what every ingress's HTTP cache holds of an app
 * (docs/cache.md). Each ingress keeps its own cache in memory, so the command calls
 * `POST /_dcdn/cache/purge` on each one signaling knows (or those given with --ingress), with an
 * operator token, the way `dcdn tail` reaches them; it reports per ingress and fails if any
 * could not be purged.
 */
import { UsageError } from './args.ts';
import { operatorIngresses } from './operator-ingresses.ts';

export async function cache(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [action, app, ...rest] = (values._ as string[] | undefined) ?? [];
  if (action !== 'purge') throw new UsageError(`unknown cache action ${JSON.stringify(action ?? '')}: use dcdn cache purge APP [--prefix PATH]`);
  if (!app || rest.length > 0) throw new UsageError('dcdn cache purge takes one APP');
  const prefix = values.prefix as string | undefined;
  if (prefix !== undefined && !prefix.startsWith('/')) throw new UsageError(`--prefix is a path starting with /, got ${JSON.stringify(prefix)}`);
  const { token, ingresses } = await operatorIngresses(values, env, { sub: 'cache-purge', ttlSeconds: 600, verb: 'purge' });
  const query = new URLSearchParams({ app, ...(prefix !== undefined ? { prefix } : {}) });
  let failed = 0;
  let total = 0;
  for (const base of new Set(ingresses)) {
    try {
      const res = await fetch(`${base}/_dcdn/cache/purge?${query}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
      const body = (await res.json()) as { purged?: number; error?: { code?: string; message?: string } };
      if (!res.ok) {
        failed++;
        process.stderr.write(`${base}: ${res.status} ${body.error?.code ?? ''} ${body.error?.message ?? ''}\n`);
        continue;
      }
      total += body.purged ?? 0;
      process.stdout.write(`${base}: purged ${body.purged ?? 0} responses\n`);
    } catch (err) {
      failed++;
      process.stderr.write(`${base}: ${(err as Error).message}\n`);
    }
  }
  process.stdout.write(`purged ${total} responses of ${app}${prefix ? ` under ${prefix}` : ''} on ${ingresses.length - failed}/${new Set(ingresses).size} ingresses\n`);
  return failed > 0 ? 1 : 0;
}
