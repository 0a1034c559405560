/**
 * `dcdn kv get|put|delete|list --app NAME --binding CACHE`: an operator's view of an app's KV
 * namespace. It opens the store itself (the SQLite file of a local `dcdn up`, or the Redis the
 * ingresses share), with the limits handlers have.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { checkKey, checkList, checkMetadata, expirationOf, KV_LIMITS, namespaceOf, openKvStore } from '../ingress/index.ts';
import { UsageError, type FlagSpec } from './args.ts';
import { readState, stateDir } from './state.ts';

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

export const kvUsage = 'dcdn kv get|put|delete|list [KEY] [VALUE] --app NAME --binding BINDING [--store SPEC]';
export const kvDescription =
  'Reads and writes an app\'s KV namespace, the data its handler sees as env.BINDING.\n' +
  '  dcdn kv get KEY           prints the value (raw bytes; --json for text with metadata)\n' +
  '  dcdn kv put KEY [VALUE]   stores VALUE, --file F or stdin; --ttl, --expiration, --metadata\n' +
  '  dcdn kv delete KEY\n' +
  '  dcdn kv list              keys in byte order; --prefix, --limit, --cursor\n' +
  'Limits are the handlers\' (key 512 bytes, value 25 MiB, metadata 1 KiB); errors print their code.';

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
