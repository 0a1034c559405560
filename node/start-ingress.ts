/**
 * Starts an ingress the way `dcdn ingress` and `dcdn up` do: tokens minted from the network's
 * secret (or a given token), and its handlers' KV store opened from a spec.
 */
import { DcdnError } from '../protocol/index.ts';
import { createIngress, openKvStore, type Ingress, type IngressOptions } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import type { Log } from './log.ts';

/** What {@link startIngress} takes: the ingress's options, with a secret or token and a KV store spec. */
export type StartIngressOptions = Omit<IngressOptions, 'token' | 'log' | 'kv'> & {
  /** The network's signing secret: the ingress mints its own tokens from it. */
  secret?: string;
  /** An ingress token instead of the secret. */
  token?: string;
  /** `sqlite:PATH`, `redis://HOST:PORT` or `none` (no KV). Default none. */
  kvStore?: string;
  log: Log;
};

/**
 * Starts an ingress that mints its own tokens from the secret (or uses the given token), with
 * the KV store `kvStore` names (`sqlite:PATH`, `redis://…`; 'none' for no KV), and listens.
 *
 * @throws {DcdnError} INGRESS_BAD_OPTION when neither `secret` nor `token` is given.
 * @example
 * ```ts
 * const ingress = await startIngress({ secret, signalUrl: signalUrls(signal.url).ws, port: 0, log: silentLog });
 * ```
 */
export async function startIngress(opts: StartIngressOptions): Promise<Ingress> {
  const { secret, token, kvStore, ...rest } = opts;
  if (!secret && !token) throw new DcdnError('INGRESS_BAD_OPTION', 'the ingress needs `secret` or `token`');
  const kv = kvStore && kvStore !== 'none' ? await openKvStore(kvStore) : undefined;
  if (kv) opts.log('info', 'kv store open', { store: kv.kind, spec: redactSpec(kvStore!) });
  const ingress = createIngress({
    ...rest,
    ...(kv ? { kv } : {}),
    token: token ?? (() => mintToken(secret!, { role: 'ingress', sub: opts.name ?? 'ingress', ttlSeconds: 3600 })),
    log: opts.log,
  });
  try {
    await ingress.listen();
  } catch (err) {
    await kv?.close();
    throw err;
  }
  return ingress;
}

/** A store spec fit for logs: a Redis URL's password is hidden. */
export function redactSpec(spec: string): string {
  return spec.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}
