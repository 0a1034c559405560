/**
 * The HTTP cache's defaults, in a module of their own so that `dcdn --help` can print them
 * without loading the cache (docs/cache.md, docs/ingress.md).
 */
export interface HttpCacheOptions {
  /** Bytes of memory for stored responses and those being copied in. 0 turns the cache off. Default 256 MiB. */
  maxBytes: number;
  /** Largest body stored; a larger one is passed through and never buffered. Default 8 MiB. */
  maxEntryBytes: number;
  /**
   * How long a URL whose last response could not be stored goes straight to the handler, without
   * waiting behind another request for it (Varnish's hit-for-miss). Default 30000 ms.
   */
  passTtlMs: number;
}

export const HTTP_CACHE_DEFAULTS: HttpCacheOptions = { maxBytes: 256 * 1024 * 1024, maxEntryBytes: 8 * 1024 * 1024, passTtlMs: 30_000 };
