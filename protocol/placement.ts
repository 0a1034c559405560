/**
 * Which ingresses a host attaches to in a cluster: weighted rendezvous hashing (highest random
 * weight, Thaler and Ravishankar 1998; the weighted form as in Schindelhauer and Schomaker's
 * "Weighted distributed hash tables") with region preference. Every ingress computes it for every
 * host it hears of, from the same inputs (the host's key and region, the `cluster` message), so
 * they agree without talking: pure code, in protocol/, deterministic across processes.
 *
 * Rendezvous hashing moves only the hosts of an ingress that leaves (about K/N of them) and takes
 * from every other ingress alike when one joins; a restarted ingress with the same name gets the
 * same hosts back. docs/cluster.md has the reasoning and the measured spread.
 */
import type { ClusterIngress } from './signaling-messages.ts';

/** What placement needs of an ingress (a `cluster` message's entries fit). */
export type PlacementIngress = Pick<ClusterIngress, 'name' | 'region' | 'weight' | 'draining'>;

const TWO_POW_53 = 2 ** 53;

/**
 * cyrb53 (bryc, public domain): a fast 53-bit string hash with good avalanche, exact in a double.
 * Not cryptographic; placement needs spread, not secrecy.
 */
export function cyrb53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The host's score on one ingress; lower is better. `u` is uniform in (0, 1), so `-ln(u)` is
 * exponential with rate 1 and `-ln(u) / weight` exponential with rate `weight`: the minimum over
 * ingresses falls on each with probability weight / total weight.
 */
export function placementScore(hostKey: string, ingress: string, weight: number): number {
  const u = (cyrb53(`${hostKey}\0${ingress}`) + 0.5) / TWO_POW_53;
  return -Math.log(u) / weight;
}

/**
 * The names of the ingresses host `hostKey` (protocol/presence-key.ts) attaches to: the best
 * `k` by score among those not draining in the host's region, filled from other regions by
 * score when the region has fewer than `k`. Gives `min(k, eligible)` distinct names, best first.
 *
 * @example
 * ```ts
 * assign('tab-7', 'eu', [{ name: 'i1', region: 'eu', weight: 1, draining: false }, { name: 'i2', region: 'us', weight: 1, draining: false }], 2);
 * // ['i1', 'i2']: the eu ingress first, then the us one to make up k
 * ```
 */
export function assign(hostKey: string, hostRegion: string, ingresses: readonly PlacementIngress[], k: number): string[] {
  const seen = new Set<string>();
  const scored: Array<{ name: string; local: boolean; score: number }> = [];
  for (const i of ingresses) {
    if (i.draining || seen.has(i.name) || !(i.weight > 0)) continue;
    seen.add(i.name);
    scored.push({ name: i.name, local: i.region === hostRegion, score: placementScore(hostKey, i.name, i.weight) });
  }
  // Same region first, then by score; equal scores (practically never) by name, so every
  // process orders them alike.
  scored.sort((a, b) => (a.local !== b.local ? (a.local ? -1 : 1) : a.score - b.score || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
  return scored.slice(0, Math.max(0, Math.floor(k))).map((s) => s.name);
}
