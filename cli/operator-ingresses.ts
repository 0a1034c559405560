/**
 * The ingresses an operator command talks to, and the token it talks with: `dcdn tail` and
 * `dcdn cache purge` both reach every ingress directly (each keeps its own logs and cache), so
 * both resolve the token and the list the same way, here.
 *
 * Token: --token, else DCDN_TOKEN, else one minted from DCDN_SECRET, else the operator token
 * `dcdn up` left in the state file. Ingresses: --ingress URL (repeatable), else those signaling
 * knows (--signal, DCDN_SIGNAL or the state file's), else the state file's own ingress.
 */
import { signalUrls } from '../node/index.ts';
import { mintToken } from '../signaling/index.ts';
import { UsageError } from './args.ts';
import { readState } from './state.ts';

export interface OperatorIngressOptions {
  /** The `sub` and lifetime of a token minted from DCDN_SECRET. */
  sub: string;
  ttlSeconds: number;
  /** What the command does, for the error when no ingress is found ("tail", "purge"). */
  verb: string;
}

/** The operator token and the ingresses' base URLs (no trailing slash; not deduplicated). */
export async function operatorIngresses(values: Record<string, unknown>, env: NodeJS.ProcessEnv, opts: OperatorIngressOptions): Promise<{ token: string; ingresses: string[] }> {
  const state = readState(env);
  const token =
    (values.token as string | undefined) ??
    env.DCDN_TOKEN ??
    (env.DCDN_SECRET ? mintToken(env.DCDN_SECRET, { role: 'operator', ttlSeconds: opts.ttlSeconds, sub: opts.sub }) : undefined) ??
    state?.operatorToken;
  if (!token) throw new UsageError('no operator token: pass --token, or set DCDN_TOKEN or DCDN_SECRET');
  let ingresses = ((values.ingress as string[] | undefined) ?? []).map((u) => u.replace(/\/+$/, ''));
  if (ingresses.length === 0) {
    const signal = (values.signal as string | undefined) ?? env.DCDN_SIGNAL ?? state?.signal;
    if (signal) ingresses = await ingressesFrom(signalUrls(signal).http, token);
    if (ingresses.length === 0 && state?.ingress) ingresses = [state.ingress];
  }
  if (ingresses.length === 0) throw new UsageError(`no ingress to ${opts.verb}: run \`dcdn up\` here, or pass --ingress URL or --signal URL`);
  return { token, ingresses };
}

/**
 * The ingresses signaling knows, by the WebSocket endpoint each announces for hosts
 * (`ws://HOST:PORT/_dcdn/host-ws`, its `--public-ws` when set): the same address serves
 * `/_dcdn/tail` and `/_dcdn/cache/purge`. Signaling shows peers' details to operators only,
 * hence the token.
 */
export async function ingressesFrom(signalHttp: string, operatorToken: string): Promise<string[]> {
  try {
    const res = await fetch(`${signalHttp}/v1/health`, { headers: { authorization: `Bearer ${operatorToken}` } });
    if (!res.ok) return [];
    const health = (await res.json()) as { peers?: Array<{ role?: string; info?: { wsUrl?: unknown } }> };
    return (health.peers ?? [])
      .filter((p) => p.role === 'ingress' && typeof p.info?.wsUrl === 'string')
      .map((p) => String(p.info!.wsUrl).replace(/^ws/, 'http').replace(/\/_dcdn\/host-ws$/, ''));
  } catch {
    return [];
  }
}
