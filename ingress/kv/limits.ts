import { DcdnError } from '../../protocol/index.ts';

/** Limits of KV operations: Workers KV's, so code written for Workers fits. All configurable. */
export interface KvLimits {
  /** Longest key in UTF-8 bytes. */
  keyBytes: number;
  /** Largest value in bytes. */
  valueBytes: number;
  /** Largest metadata, serialised as JSON, in bytes. */
  metadataBytes: number;
  /** Shortest expirationTtl, and the least distance of an absolute expiration from now, in s. */
  minTtlSeconds: number;
  /** Most keys one list() returns. */
  listLimit: number;
}

export const KV_LIMITS: KvLimits = {
  keyBytes: 512,
  valueBytes: 25 * 1024 * 1024,
  metadataBytes: 1024,
  minTtlSeconds: 60,
  listLimit: 1000,
};

/** @throws {DcdnError} KV_BAD_KEY unless `key` is 1..keyBytes bytes of UTF-8 and not "." or "..". */
export function checkKey(key: string, limits: KvLimits = KV_LIMITS): string {
  const bytes = Buffer.byteLength(key);
  if (bytes === 0 || bytes > limits.keyBytes || key === '.' || key === '..') {
    throw new DcdnError('KV_BAD_KEY', `keys are 1 to ${limits.keyBytes} bytes of UTF-8 and not "." or ".." (got ${bytes} bytes)`);
  }
  return key;
}

/**
 * The absolute expiration (Unix seconds) of a put, from its `expirationTtl` and `expiration`
 * as given (text or numbers); undefined for none. Both given: the TTL wins.
 *
 * @throws {DcdnError} KV_BAD_EXPIRATION when either is not a number or is under the minimum TTL.
 */
export function expirationOf(ttl: string | number | undefined, at: string | number | undefined, nowMs: number, limits: KvLimits = KV_LIMITS): number | undefined {
  const nowS = Math.floor(nowMs / 1000);
  const min = limits.minTtlSeconds;
  if (ttl !== undefined) {
    const n = Number(ttl);
    if (!Number.isFinite(n) || n < min) throw new DcdnError('KV_BAD_EXPIRATION', `expirationTtl must be at least ${min} seconds; got ${String(ttl).slice(0, 32)}`);
    // Rounded up to whole seconds: the key lives at least `expirationTtl` seconds, never less.
    return Math.ceil(nowMs / 1000) + Math.floor(n);
  }
  if (at !== undefined) {
    const n = Number(at);
    if (!Number.isFinite(n) || Math.floor(n) < nowS + min) throw new DcdnError('KV_BAD_EXPIRATION', `expiration must be a Unix time at least ${min} seconds from now (${nowS + min}); got ${String(at).slice(0, 32)}`);
    return Math.floor(n);
  }
  return undefined;
}

/** @throws {DcdnError} KV_METADATA_TOO_LARGE when `json` is over the limit or not JSON. */
export function checkMetadata(json: string, limits: KvLimits = KV_LIMITS): string {
  const bytes = Buffer.byteLength(json);
  if (bytes > limits.metadataBytes) throw new DcdnError('KV_METADATA_TOO_LARGE', `metadata is ${bytes} bytes serialised; the limit is ${limits.metadataBytes}`);
  try {
    JSON.parse(json);
  } catch {
    throw new DcdnError('KV_METADATA_TOO_LARGE', 'metadata is not valid JSON');
  }
  return json;
}

/** @throws {DcdnError} KV_BAD_LIST for a prefix longer than a key, a bad limit or cursor. */
export function checkList(prefix: string, limit: number, cursor: string | undefined, limits: KvLimits = KV_LIMITS): void {
  if (Buffer.byteLength(prefix) > limits.keyBytes) throw new DcdnError('KV_BAD_LIST', `the prefix is longer than a key may be (${limits.keyBytes} bytes)`);
  if (!Number.isInteger(limit) || limit < 1 || limit > limits.listLimit) throw new DcdnError('KV_BAD_LIST', `limit must be a whole number from 1 to ${limits.listLimit}`);
  if (cursor !== undefined && (cursor.length === 0 || cursor.length > 4096)) throw new DcdnError('KV_BAD_LIST', 'the cursor is not one list() returned');
}
