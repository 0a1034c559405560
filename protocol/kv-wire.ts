/**
 * Names on the KV wire (docs/kv.md): the headers a tab's KV namespace and the ingress's KV
 * service exchange on a KV stream. Both sides import them from here, so a rename cannot make
 * them drift apart.
 */
export const KV_HEADERS = {
  /** Absolute expiry of a put, in seconds since the epoch. */
  expiration: 'dcdn-kv-expiration',
  /** Relative expiry of a put, in seconds from now. */
  expirationTtl: 'dcdn-kv-expiration-ttl',
  /** A value's metadata, as JSON. */
  metadata: 'dcdn-kv-metadata',
  /** The KV_* code of a failed operation (the same header HTTP clients see). */
  error: 'dcdn-error',
} as const;
