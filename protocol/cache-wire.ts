/**
 * Names on the Cache API wire (docs/cache.md): the headers a tab's `caches` and the ingress's
 * cache service exchange on a cache stream (`GET|PUT|DELETE /cache/<name>/<encoded URL>`).
 * Both sides import them from here, so a rename cannot make them drift apart.
 */
export const CACHE_HEADERS = {
  /** The stored response's status (a put's, a match's answer). */
  status: 'dcdn-cache-status',
  /** A put: the request's headers the response varies on, as a JSON object. */
  request: 'dcdn-cache-request',
  /** A put's answer: `1` when the response was stored, `0` when its headers forbade it. */
  stored: 'dcdn-cache-stored',
} as const;

/** The path prefix of Cache API streams (KV's is `/kv/`). */
export const CACHE_PATH_PREFIX = '/cache/';
