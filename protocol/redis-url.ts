/**
 * Where a Redis lives, from the specs dcdn accepts: `redis://[user:pass@]host[:port][/db]`,
 * `rediss://…` (TLS), `redis+unix:///path/to/redis.sock[?db=N][&user=U&password=P]` (a URL with
 * a path and no host has no room for credentials), or a bare socket path.
 *
 * Pure (the WHATWG `URL` global only), so the ingress's KV store and signaling's cluster
 * coordination share one parser without importing each other. The result's fields are named as
 * ioredis names its options, so it can be spread into them.
 *
 * @example
 * ```ts
 * new Redis({ ...parseRedisUrl('redis+unix:///run/redis.sock?db=2'), lazyConnect: true });
 * ```
 */
export interface RedisEndpoint {
  /** A unix socket; set instead of host and port. */
  path?: string;
  host?: string;
  port?: number;
  db: number;
  username?: string;
  password?: string;
  /** Present for `rediss://`: TLS, checking the certificate against the host name. */
  tls?: { servername: string };
}

/** Parses a Redis spec; throws a RangeError naming the spec when it is not one. */
export function parseRedisUrl(spec: string): RedisEndpoint {
  if (spec.startsWith('/')) return { path: spec, db: 0 };
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new RangeError(`not a Redis URL or socket path: ${JSON.stringify(spec)}`);
  }
  const auth = {
    ...(url.username && { username: decodeURIComponent(url.username) }),
    ...(url.password && { password: decodeURIComponent(url.password) }),
  };
  const db = Number((url.protocol === 'redis+unix:' ? url.searchParams.get('db') : url.pathname.slice(1)) || 0);
  if (!Number.isInteger(db) || db < 0) throw new RangeError(`not a Redis database number in ${JSON.stringify(spec)}`);
  switch (url.protocol) {
    case 'redis+unix:': {
      const user = url.searchParams.get('user');
      const password = url.searchParams.get('password');
      return { path: decodeURIComponent(url.pathname), db, ...auth, ...(user && { username: user }), ...(password && { password }) };
    }
    case 'redis:':
    case 'rediss:':
      return {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || 6379),
        db,
        ...auth,
        ...(url.protocol === 'rediss:' && { tls: { servername: url.hostname } }),
      };
    default:
      throw new RangeError(`not a Redis URL: ${JSON.stringify(spec)}`);
  }
}
