/**
 * The signals an ingress and a host exchange through the signaling service to set up a
 * connection (`data` of a signaling `signal` message). The ingress always leads: it offers
 * WebRTC, or tells the host to dial its WebSocket endpoint with a one-time ticket. `conn`
 * names one connection attempt, so late signals of an abandoned attempt are ignored.
 */
export type LinkSignal =
  | { kind: 'offer'; conn: string; sdp: string }
  | { kind: 'answer'; conn: string; sdp: string }
  | { kind: 'candidate'; conn: string; candidate: LinkCandidate | null }
  | { kind: 'websocket'; conn: string; url: string; ticket: string }
  | { kind: 'close'; conn: string; reason: string };

/**
 * A trickled ICE candidate as it travels over signaling (the JSON form of
 * `RTCIceCandidateInit`): the one shape the ingress's peers and the tab's answerer use.
 */
export interface LinkCandidate {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
}

/**
 * Largest message either side sends over the WebSocket transport (the fallback link). The
 * ingress caps its socket's payload from it and the tab chunks to it, so both read it here.
 */
export const WS_MAX_MESSAGE_SIZE = 256 * 1024;

const MAX_SDP = 64 * 1024;
const MAX_FIELD = 4096;

/** Reads a signal from an untrusted peer; null when it is not one of the shapes above. */
export function parseLinkSignal(data: unknown): LinkSignal | null {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const d = data as Record<string, unknown>;
  const conn = d.conn;
  if (!isStr(conn, 64)) return null;
  switch (d.kind) {
    case 'offer':
    case 'answer':
      return isStr(d.sdp, MAX_SDP) ? { kind: d.kind, conn, sdp: d.sdp } : null;
    case 'candidate': {
      if (d.candidate === null) return { kind: 'candidate', conn, candidate: null };
      const c = d.candidate as Record<string, unknown> | undefined;
      if (typeof c !== 'object' || c === null || !isStr(c.candidate, MAX_FIELD)) return null;
      const sdpMid = isStr(c.sdpMid, 64) ? c.sdpMid : null;
      const sdpMLineIndex = typeof c.sdpMLineIndex === 'number' && Number.isInteger(c.sdpMLineIndex) ? c.sdpMLineIndex : null;
      return { kind: 'candidate', conn, candidate: { candidate: c.candidate, sdpMid, sdpMLineIndex } };
    }
    case 'websocket':
      return isStr(d.url, MAX_FIELD) && isStr(d.ticket, 256) ? { kind: 'websocket', conn, url: d.url, ticket: d.ticket } : null;
    case 'close':
      return { kind: 'close', conn, reason: isStr(d.reason, 256) ? d.reason : '' };
    default:
      return null;
  }
}

function isStr(x: unknown, max: number): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= max;
}
