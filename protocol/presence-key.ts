/**
 * The key a host is known by across signaling reconnects and signaling nodes, shared by
 * signaling (its presence entries are `h:` + this key) and the ingress (its host links, and the
 * placement of hosts on ingresses, are keyed by it). Pure code in protocol/ so both compute the
 * same key without importing each other.
 */
import type { PeerInfo } from './signaling-messages.ts';
import { volunteerHostId } from './trust.ts';

/** Longest host id a tab may report and have used as its key; a longer one falls back to the connection id. */
export const MAX_HOST_ID_LENGTH = 64;

/**
 * The stable id a host's tab reports (`info.hostId`). A volunteer's is qualified by its invite
 * (`vol-<invite>-<id>`, as signaling already made it and `dcdn hosts list` shows it), so a
 * volunteer claiming another host's id cannot take that host's place (at worst it displaces
 * another tab of its own invite). A host that reports no usable id is keyed by its connection id.
 *
 * @example
 * ```ts
 * linkKey({ id: 'c1', role: 'host', info: { hostId: 'tab-7' }, since: 0 }); // 'tab-7'
 * ```
 */
export function linkKey(peer: PeerInfo): string {
  const reported = typeof peer.info.hostId === 'string' ? peer.info.hostId : '';
  if (peer.volunteer) return volunteerHostId(peer.sub, reported || peer.id);
  return reported && reported.length <= MAX_HOST_ID_LENGTH ? reported : peer.id;
}
