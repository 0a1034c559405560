/**
 * The HTTP cache's Prometheus metrics (docs/cache.md, docs/observability.md), read from its
 * counters at scrape time: a hit costs no prom-client call.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CacheApiService } from './cache-api.ts';
import type { HttpCache } from './http-cache.ts';

export function registerCacheMetrics(registry: Registry, cache: HttpCache, api: CacheApiService): void {
  const registers = [registry];
  const s = cache.stats;
  new Counter({
    name: 'dcdn_cache_requests_total',
    help: 'Requests by their dcdn-cache answer: HIT (from memory), STALE (stale, served while revalidating or on error), MISS (asked the handler), BYPASS (not for the cache)',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      this.inc({ result: 'HIT' }, s.hits);
      this.inc({ result: 'STALE' }, s.stale);
      this.inc({ result: 'MISS' }, s.misses);
      this.inc({ result: 'BYPASS' }, s.bypasses);
    },
  });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter('dcdn_cache_served_bytes_total', 'Response body bytes answered from the cache', () => s.bytesServed);
  counter('dcdn_cache_stored_bytes_total', 'Response body bytes copied into the cache', () => s.bytesStored);
  counter('dcdn_cache_stores_total', 'Responses stored in the cache', () => s.stores);
  counter('dcdn_cache_evictions_total', 'Stored responses evicted to make room (LRU)', () => cache.store.evictions);
  counter('dcdn_cache_revalidations_total', 'Background revalidations started (stale-while-revalidate)', () => s.revalidations);
  counter('dcdn_cache_purged_total', 'Stored responses removed by deploys, rollbacks and dcdn cache purge', () => s.purged);
  counter('dcdn_cache_api_operations_total', "Handlers' Cache API operations (match, put, delete)", () => api.stats.matches + api.stats.puts + api.stats.deletes);
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge('dcdn_cache_bytes', 'Bytes the cache holds (stored responses and those being copied in); at most dcdn_cache_max_bytes', () => cache.store.bytes);
  gauge('dcdn_cache_max_bytes', 'The cache size (--cache-size)', () => cache.store.maxBytes);
  gauge('dcdn_cache_entries', 'Responses stored', () => cache.store.stats.entries);
}
