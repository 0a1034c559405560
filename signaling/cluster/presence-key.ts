/**
 * Presence keys (SCALE-OUT.md §3.1): `h:` + the host's link key, `i:` + the ingress's name. A
 * newer registration of the same key replaces the older one cluster-wide (SIG_DUPLICATE_PEER).
 *
 * The host link key must equal what ingresses key their links by (`linkKey` in
 * ingress/host-connector.ts): the tab's reported `hostId`, or `v:{sub}:{hostId}`-style
 * namespacing for volunteers (protocol/trust.ts `volunteerHostId`). This is a copy until the
 * shared one lands in protocol/presence-key.ts; keep the two in step.
 */
import { volunteerHostId, type PeerInfo } from '../../protocol/index.ts';

/** Longest ingress name used as a key; a longer or missing name keys the ingress by its connection id. */
const MAX_NAME = 128;

/** The key a host is known by across reconnects (its connection id when it reports no usable hostId). */
export function hostLinkKey(peer: Pick<PeerInfo, 'id' | 'info' | 'sub' | 'volunteer'>): string {
  const reported = typeof peer.info['hostId'] === 'string' ? peer.info['hostId'] : '';
  if (peer.volunteer) return volunteerHostId(peer.sub, reported || peer.id);
  return reported && reported.length <= 64 ? reported : peer.id;
}

/** The presence key of a peer that said hello. */
export function presenceKey(peer: Pick<PeerInfo, 'id' | 'role' | 'info' | 'sub' | 'volunteer'>): string {
  if (peer.role === 'host') return `h:${hostLinkKey(peer)}`;
  const name = peer.info['name'];
  return `i:${typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME ? name : peer.id}`;
}
