/** The ingress's HTTP cache and the handlers' Cache API behind it (docs/cache.md). */
export { CacheApiService, type CacheApiCaller } from './cache-api.ts';
export { registerCacheMetrics } from './cache-metrics.ts';
export { HTTP_CACHE_DEFAULTS, HttpCache, type HttpCacheOptions, type HttpCacheStats, type OriginAnswer, type OriginFetch } from './http-cache.ts';
export { originFetch } from './origin-fetch.ts';
export { registerCachePurge } from './purge-endpoint.ts';
