/**
 * What the ingress needs from a WebRTC stack to reach a tab: the offering side of one peer
 * connection with one data channel, and the SDP helpers both backends share. Free of werift
 * and node-datachannel, so loading one backend never loads the other.
 */
import type { Channel, IceServer, LinkCandidate } from '../protocol/index.ts';

// The contract's shapes, re-exported for the backends that implement an Offerer.
export type { IceServer, LinkCandidate };

/** Chromium's ceiling for `a=max-message-size` (werift advertises 65536 unless told). */
export const CHROMIUM_MAX_MESSAGE_SIZE = 262144;
/** What RFC 8841 section 6 says to assume when the remote SDP has no `a=max-message-size`. */
export const SDP_DEFAULT_MAX_MESSAGE_SIZE = 65536;

export interface OffererOptions {
  /** Operator-configured STUN/TURN. Default none (werift then runs as ICE-lite). */
  iceServers?: IceServer[];
  /** The only addresses put in our candidates. Default `['127.0.0.1']`. */
  advertisedAddresses?: string[];
  /** Advertised in `a=max-message-size`. Default 262144 (Chromium's ceiling). */
  maxMessageSize?: number;
  /** Data channel label. Default 'dcdn'. */
  label?: string;
  /**
   * The receive buffer asked of the kernel for each of werift's UDP sockets, in bytes. Default
   * {@link UDP_RECEIVE_BUFFER_BYTES}. Linux caps it at `net.core.rmem_max` (and doubles it for
   * bookkeeping). node-datachannel's sockets are libjuice's own (it sizes them itself).
   */
  udpReceiveBufferBytes?: number;
}

/**
 * Default {@link OffererOptions.udpReceiveBufferBytes}: 4 MiB, enough datagrams for werift's
 * whole SCTP receive window (1 MiB of DATA, ~900 datagrams of ~2.3 KiB kernel footprint each).
 *
 * With the kernel's default (net.core.rmem_default, 212992 bytes: ~90 datagrams) a tab sending
 * to an ingress whose event loop is behind by more than ~100 KB loses datagrams that SCTP's own
 * flow control allowed; each loss costs the tab's SCTP a retransmission timeout, which doubles
 * with every loss in a row, and on a loaded machine that stalled a fresh channel's first large
 * response for over the session heartbeat's timeout: the ingress took the live tab for dead
 * (502 INGRESS_HOST_LOST; docs/webrtc.md). A buffer that holds the whole window leaves the pacing
 * to SCTP's flow control, as it is meant to.
 */
export const UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

export interface SessionDescription {
  type: 'offer' | 'answer';
  sdp: string;
}

export type PeerConnectionState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

export interface Offerer {
  /** Which WebRTC stack this is. */
  readonly backend: 'werift' | 'node-datachannel';
  /** The stack's configuration in force, for logs and for tests that audit it. */
  readonly config: Readonly<object>;
  /** Creates the offer (werift: with every candidate; node-datachannel: candidates trickle after the answer). */
  offer(): Promise<SessionDescription>;
  /** Applies the tab's answer (its `.local` candidates removed) and learns its max-message-size. */
  acceptAnswer(description: SessionDescription): Promise<void>;
  /** Adds a candidate the tab trickled; `.local` and disallowed addresses are dropped. */
  addRemoteCandidate(candidate: LinkCandidate | null): Promise<void>;
  /** Candidates gathered after `offer()` resolved (werift gathers all before, so rarely any). */
  onLocalCandidate: ((candidate: LinkCandidate | null) => void) | null;
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null;
  readonly connectionState: PeerConnectionState;
  /** Resolves once the data channel is open; rejects if the connection fails or closes first. */
  readonly opened: Promise<Channel>;
  /** Milliseconds from `offer()` to the channel opening, once it has. */
  readonly setupMs: number | undefined;
  close(): Promise<void>;
}

/**
 * Which of the ICE servers signaling handed out an ingress advertising `advertisedAddresses`
 * can use. In loopback-only mode (the default, `['127.0.0.1']`) both backends bind their
 * sockets to loopback (and werift ignores STUN answers from anywhere else), so only servers
 * named by a loopback literal or `localhost` are kept: a server elsewhere could only stall
 * gathering, and nothing may leave 127.0.0.0/8 in that mode. Once any advertised address is
 * not loopback (`dcdn ingress --ice-address`), every server the operator configured is kept.
 * Servers given to the ingress itself (`rtc.iceServers`, `dcdn ingress --stun/--turn`) do not
 * pass through here: they are used as they are. Names the dropped URLs so the caller can log them.
 */
export function reachableIceServers(servers: IceServer[], advertisedAddresses: string[] = ['127.0.0.1']): { servers: IceServer[]; dropped: string[] } {
  if (!advertisedAddresses.every((a) => a.startsWith('127.') || a === '::1')) return { servers, dropped: [] };
  const kept: IceServer[] = [];
  const dropped: string[] = [];
  for (const server of servers) {
    const urls = (Array.isArray(server.urls) ? server.urls : [server.urls]).filter((url) => {
      const host = /^(?:stuns?|turns?):(\[[^\]]*\]|[^:?]*)/i.exec(url.trim())?.[1]?.toLowerCase() ?? '';
      const loopback = host.startsWith('127.') || host === '[::1]' || host === 'localhost';
      if (!loopback) dropped.push(url);
      return loopback;
    });
    if (urls.length > 0) kept.push({ ...server, urls });
  }
  return { servers: kept, dropped };
}

/** The connection-address field of a candidate line (`[a=]candidate:f c t p ADDRESS port typ ...`). */
export function candidateAddress(line: string): string | undefined {
  const fields = line.trim().replace(/^a=/, '').split(/\s+/);
  if (!fields[0]?.startsWith('candidate:')) return undefined;
  return fields[4]?.toLowerCase();
}

/** Drops `a=candidate` lines for which `keep` is false; leaves every other line alone. */
export function filterCandidateLines(sdp: string, keep: (line: string) => boolean): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return sdp
    .split(/\r?\n/)
    .filter((line) => !line.startsWith('a=candidate:') || keep(line))
    .join(eol);
}

/** The application section's `a=max-message-size`, or null when absent (RFC 8841 section 6). */
export function parseMaxMessageSize(sdp: string): number | null {
  const match = /^a=max-message-size:(\d+)\s*$/m.exec(sdp);
  return match?.[1] !== undefined ? Number.parseInt(match[1], 10) : null;
}

