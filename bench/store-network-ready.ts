/**
 * Reads the ready line of bench/servers/store-network.ts (the kv and sql sections' child): fails
 * on `{"error"}`, marks the stores it could not open as skipped, and says which stores to measure.
 */

/**
 * `ready` is the child's first JSON line; `runs` the section's results per store, whose `skipped`
 * is set for each store the child skipped. Returns each live store's ingress URL, in `kinds` order.
 */
export function liveStores<K extends string>(section: string, ready: Record<string, unknown>, kinds: readonly K[], runs: Record<K, { skipped?: string }>): { live: K[]; urls: Record<K, string> } {
  if (typeof ready.error === 'string') throw new Error(`${section}: ${ready.error}`);
  for (const [name, why] of Object.entries((ready.skipped ?? {}) as Record<string, string>)) runs[name as K].skipped = why;
  const urls = (ready.ingresses ?? {}) as Partial<Record<K, string>>;
  const live = kinds.filter((k) => urls[k] && !runs[k].skipped);
  return { live, urls: urls as Record<K, string> };
}
