/**
 * Starts an ingress the way `dcdn ingress` and `dcdn up` do: tokens minted from the network's
 * secret (or a given token), and its handlers' KV store opened from a spec.
 */
import { DcdnError } from '../protocol/index.ts';
import { createIngress, listenMetrics, openKvStore, openSqlStore, staticToken, type Ingress, type IngressOptions } from '../ingress/index.ts';
import { mintToken, verifyToken } from '../signaling/index.ts';
import type { Log } from './log.ts';

/** What {@link startIngress} takes: the ingress's options, with a secret or token and a KV store spec. */
export type StartIngressOptions = Omit<IngressOptions, 'token' | 'log' | 'kv' | 'sql'> & {
  /** The network's signing secret: the ingress mints its own tokens from it. */
  secret?: string;
  /** An ingress token instead of the secret. */
  token?: string;
  /** `sqlite:PATH`, `redis://HOST:PORT`, `postgres://USER@HOST/DB` or `none` (no KV). Default none. */
  kvStore?: string;
  /** `pglite:DIR` (embedded, one database per binding under DIR), `postgres://USER@HOST/DB` or `none` (no SQL). Default none. */
  sqlStore?: string;
  /** A fixed bearer token Prometheus may scrape `/_dcdn/metrics` with, besides operator tokens. */
  metricsToken?: string;
  /** Also serve `/metrics`, without a token, on this address. */
  metricsListen?: { host: string; port: number };
  log: Log;
};

/**
 * Starts an ingress that mints its own tokens from the secret (or uses the given token), with
 * the KV store `kvStore` names (`sqlite:PATH`, `redis://…`, `postgres://…`; 'none' for no KV), and listens.
 *
 * @throws {DcdnError} INGRESS_BAD_OPTION when neither `secret` nor `token` is given.
 * @example
 * ```ts
 * const ingress = await startIngress({ secret, signalUrl: signalUrls(signal.url).ws, port: 0, log: silentLog });
 * ```
 */
export async function startIngress(opts: StartIngressOptions): Promise<Ingress> {
  const { secret, token, kvStore, sqlStore, metricsToken, metricsListen, ...rest } = opts;
  if (!secret && !token) throw new DcdnError('INGRESS_BAD_OPTION', 'the ingress needs `secret` or `token`');
  const kv = kvStore && kvStore !== 'none' ? await openKvStore(kvStore, { log: opts.log }) : undefined;
  if (kv) opts.log('info', 'kv store open', { store: kv.kind, spec: redactSpec(kvStore!) });
  let sql;
  try {
    sql = sqlStore && sqlStore !== 'none' ? await openSqlStore(sqlStore, { log: opts.log }) : undefined;
  } catch (err) {
    await kv?.close();
    throw err;
  }
  if (sql) opts.log('info', 'sql store open', { store: sql.kind, spec: redactSpec(sqlStore!) });
  const ingress = createIngress({
    ...rest,
    ...(kv ? { kv } : {}),
    ...(sql ? { sql } : {}),
    token: token ?? (() => mintToken(secret!, { role: 'ingress', sub: opts.name ?? 'ingress', ttlSeconds: 3600 })),
    metrics: { ...rest.metrics, ...metricsAccess(secret, metricsToken), ...(metricsListen ? { listen: metricsListen } : {}) },
    ...(secret ? { authorizeOperator: operatorTokens(secret) } : {}),
    log: opts.log,
  });
  try {
    await ingress.listen();
  } catch (err) {
    await kv?.close();
    await sql?.close();
    throw err;
  }
  return ingress;
}

/**
 * Who may read an ingress's `/_dcdn/metrics`: operator tokens when the ingress knows the
 * network's secret, and the fixed `metricsToken`. With neither, nobody (only a `metricsListen`
 * address serves them).
 */
function metricsAccess(secret: string | undefined, fixed: string | undefined): { authorize?: (token: string) => boolean } {
  if (!secret && !fixed) return {};
  const matchesFixed = fixed ? staticToken(fixed) : () => false;
  const operator = secret ? operatorTokens(secret) : () => false;
  return { authorize: (token) => matchesFixed(token) || operator(token) };
}

/** Accepts valid operator tokens signed with `secret` (what `/_dcdn/tail` takes). */
function operatorTokens(secret: string): (token: string) => boolean {
  return (token) => {
    try {
      verifyToken(secret, token, ['operator']);
      return true;
    } catch {
      // An invalid, expired or wrong-role token is simply not an operator's: the caller answers 401.
      return false;
    }
  };
}

/** A store spec fit for logs: a Redis or Postgres URL's password is hidden. */
export function redactSpec(spec: string): string {
  return spec.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}
