import type { LinkCandidate } from '../protocol/index.ts';
import { RtcChannel } from './rtc-channel.ts';

export interface AnswerOptions {
  /** Operator-configured STUN/TURN only. Default none: no third party is ever contacted. */
  iceServers?: RTCIceServer[];
  /** `relay` gathers only TURN relay candidates (to test TURN, or to hide this host's addresses). Default 'all'. */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** Label of the ingress's channel; others are refused. Default 'dcdn'. */
  label?: string;
}

export interface Answerer {
  answer: RTCSessionDescriptionInit;
  pc: RTCPeerConnection;
  /** Resolves when the ingress's data channel opens; rejects if the connection fails first. */
  channel: Promise<RtcChannel>;
  /**
   * Set to receive this side's trickled candidates; `null` marks the end of gathering.
   * Candidates gathered before it is set are buffered and delivered on assignment.
   */
  onLocalCandidate: ((candidate: LinkCandidate | null) => void) | null;
  /** Adds a candidate trickled by the ingress. */
  addRemoteCandidate(candidate: LinkCandidate): Promise<void>;
}

/**
 * Answers the ingress's offer in the page. The ingress (werift) is the offerer and creates the
 * single reliable, ordered channel; this side only accepts it.
 *
 * @example
 * ```ts
 * const a = await answerOffer(offer);
 * a.onLocalCandidate = (c) => signaling.send({ type: 'candidate', candidate: c });
 * signaling.send(a.answer);
 * const channel = await a.channel;
 * ```
 */
export async function answerOffer(offer: RTCSessionDescriptionInit, options: AnswerOptions = {}): Promise<Answerer> {
  const label = options.label ?? 'dcdn';
  const pc = new RTCPeerConnection({ iceServers: options.iceServers ?? [], iceTransportPolicy: options.iceTransportPolicy ?? 'all' });
  const gathered: Array<LinkCandidate | null> = [];
  let deliver: ((candidate: LinkCandidate | null) => void) | null = null;
  const result: Answerer = {
    answer: { type: 'answer', sdp: '' },
    pc,
    channel: new Promise<RtcChannel>((resolve, reject) => {
      const fail = (why: string) => reject(new Error(`peer connection ${why} before the data channel opened`));
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'failed' || pc.connectionState === 'closed') fail(pc.connectionState);
      });
      pc.addEventListener('datachannel', (event) => {
        const dc = event.channel;
        if (dc.label !== label) {
          dc.close();
          return;
        }
        // The channel is the connection's only purpose: when it goes, the connection goes too.
        dc.addEventListener('close', () => pc.close());
        const channel = new RtcChannel(dc, pc);
        if (dc.readyState === 'open') resolve(channel);
        else dc.addEventListener('open', () => resolve(channel), { once: true });
      });
    }),
    get onLocalCandidate() {
      return deliver;
    },
    set onLocalCandidate(callback) {
      deliver = callback;
      while (deliver && gathered.length > 0) deliver(gathered.shift() ?? null);
    },
    addRemoteCandidate: (candidate) => pc.addIceCandidate(candidate),
  };
  // Swallowed here so a caller that only awaits later never sees an unhandled rejection.
  result.channel.catch(() => undefined);
  pc.addEventListener('icecandidate', (event) => {
    const c = event.candidate;
    const signal = c && c.candidate ? { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } : null;
    if (deliver) deliver(signal);
    else gathered.push(signal);
  });
  await pc.setRemoteDescription(offer);
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  result.answer = { type: 'answer', sdp: pc.localDescription?.sdp ?? answer.sdp ?? '' };
  return result;
}
