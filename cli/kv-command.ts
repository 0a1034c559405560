/**
 * `dcdn kv get|put|delete|list --app NAME --binding CACHE`: an operator's view of an app's KV
 * namespace. It opens the store itself (the SQLite file of a local `dcdn up`, or the Redis the
 * ingresses share), with the limits handlers have.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { checkKey, checkList, checkMetadata, expirationOf, KV_LIMITS, namespaceOf, openKvStore } from '../ingress/index.ts';
import { UsageError } from './args.ts';
import { readState, stateDir } from './state.ts';
import { kvUsage } from './command-flags.ts';

export { kvDescription, kvFlags, kvUsage } from './command-flags.ts';

/** The store a local `dcdn up` uses, or the one named. */
export function kvStoreSpec(flag: unknown, env: NodeJS.ProcessEnv = process.env): string {
  return (flag as string | undefined) ?? env.DCDN_KV_STORE ?? readState(env)?.kvStore ?? `sqlite:${join(stateDir(env), 'kv.db')}`;
}

export async function kv(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [action, key, value] = values._;
  const app = values.app as string | undefined;
  const binding = values.binding as string | undefined;
  if (!action || !['get', 'put', 'delete', 'list'].includes(action)) throw new UsageError(`usage: ${kvUsage}`);
  if (!app || !binding) throw new UsageError('--app NAME and --binding BINDING are required');
  if (action !== 'list' && key === undefined) throw new UsageError(`usage: dcdn kv ${action} KEY`);
  const store = await openKvStore(kvStoreSpec(values.store));
  const namespace = namespaceOf(app, binding);
  try {
    switch (action) {
      case 'get': {
        const entry = await store.get(namespace, checkKey(key!));
        if (!entry) {
          process.stderr.write(`no key ${JSON.stringify(key)} in ${app}/${binding}\n`);
          return 1;
        }
        if (values.json) {
          const chunks: Uint8Array[] = [];
          for await (const c of entry.chunks()) chunks.push(c);
          const out = { key, value: Buffer.concat(chunks).toString('utf8'), size: entry.size, expiration: entry.expiration ?? null, metadata: entry.metadata === undefined ? null : (JSON.parse(entry.metadata) as unknown) };
          process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        } else {
          for await (const c of entry.chunks()) if (!process.stdout.write(c)) await new Promise((r) => process.stdout.once('drain', r));
        }
        return 0;
      }
      case 'put': {
        checkKey(key!);
        const expiration = expirationOf(values.ttl as string | undefined, values.expiration as string | undefined, Date.now());
        const metadata = values.metadata === undefined ? undefined : checkMetadata(String(values.metadata));
        const source: AsyncIterable<Uint8Array> = values.file !== undefined ? (createReadStream(String(values.file)) as AsyncIterable<Uint8Array>) : value !== undefined ? toAsync(Buffer.from(value)) : (process.stdin as AsyncIterable<Uint8Array>);
        await store.put(namespace, key!, source, {
          maxValueBytes: KV_LIMITS.valueBytes,
          ...(expiration !== undefined ? { expiration } : {}),
          ...(metadata !== undefined ? { metadata } : {}),
        });
        process.stderr.write(`stored ${JSON.stringify(key)} in ${app}/${binding}${expiration !== undefined ? ` until ${new Date(expiration * 1000).toISOString()}` : ''}\n`);
        return 0;
      }
      case 'delete':
        await store.delete(namespace, checkKey(key!));
        process.stderr.write(`deleted ${JSON.stringify(key)} from ${app}/${binding}\n`);
        return 0;
      case 'list': {
        const prefix = (values.prefix as string | undefined) ?? '';
        const limit = values.limit === undefined ? KV_LIMITS.listLimit : Number(values.limit);
        const cursor = values.cursor as string | undefined;
        checkList(prefix, limit, cursor);
        const result = await store.list(namespace, { prefix, limit, ...(cursor !== undefined ? { cursor } : {}) });
        if (values.json) {
          process.stdout.write(JSON.stringify({ keys: result.keys.map((k) => ({ ...k, metadata: k.metadata === undefined ? undefined : (JSON.parse(k.metadata) as unknown) })), list_complete: result.listComplete, cursor: result.cursor }, null, 2) + '\n');
          return 0;
        }
        for (const k of result.keys) {
          const extra = [k.expiration !== undefined ? `expires ${new Date(k.expiration * 1000).toISOString()}` : '', k.metadata !== undefined ? `metadata ${k.metadata}` : ''].filter(Boolean);
          process.stdout.write(`${k.name}${extra.length ? `\t${extra.join('\t')}` : ''}\n`);
        }
        process.stderr.write(`${result.keys.length} key(s)${result.listComplete ? '' : `; more: --cursor ${result.cursor}`}\n`);
        return 0;
      }
    }
    return 2;
  } finally {
    await store.close();
  }
}

async function* toAsync(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += 64 * 1024) yield bytes.subarray(at, at + 64 * 1024);
}
