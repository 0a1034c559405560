/**
 * Presence keys (SCALE-OUT.md §3.1): `h:` + the host's link key (protocol/presence-key.ts, the
 * same key ingresses give their links), `i:` + the ingress's name. A newer registration of the
 * same key replaces the older one cluster-wide (SIG_DUPLICATE_PEER).
 */
import { linkKey, type PeerInfo } from '../../protocol/index.ts';

/** Longest ingress name used as a key; a longer or missing name keys the ingress by its connection id. */
const MAX_NAME = 128;

/** The presence key of a peer that said hello. */
export function presenceKey(peer: PeerInfo): string {
  if (peer.role === 'host') return `h:${linkKey(peer)}`;
  const name = peer.info['name'];
  return `i:${typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME ? name : peer.id}`;
}
