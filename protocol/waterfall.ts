/**
 * A timed request's waterfall: where its time went, hop by hop, from the ingress accepting it to
 * the last byte to the client. The ingress stamps its hops (`IngressTimes`), the host its own
 * (`HostTimes`, carried in the TIMING frame), each on its own clock; host times are moved onto
 * the ingress's clock with the session's offset estimate (clock-offset.ts). Runtime-neutral.
 */
import type { HostTimes } from './frames.ts';

/** The ingress's stamps, ms on its clock (`performance.timeOrigin + performance.now()`). */
export interface IngressTimes {
  /** The request reached the ingress's HTTP handler. */
  accepted: number;
  /** Its REQ_HEAD was framed (the stream opened on a host's session). */
  framed: number;
  /** The session sent the message holding the head on the channel. */
  sent: number;
  /** The RES_HEAD came back. */
  headReceived: number;
  /** The last byte of the answer was handed to the client's socket. */
  lastByte: number;
}

/**
 * The segments, in order; they add up to the whole request (accepted → lastByte).
 * `toPage` and `toIngress` are one-way channel times and depend on the offset estimate: their
 * sum is exact, their split is exact only when both directions take as long.
 */
export const WATERFALL_SEGMENTS = [
  'ingressIn', // accepted → framed: parsing, routing, picking a host, framing the head
  'ingressQueue', // framed → sent: waiting for the session's end-of-turn flush
  'toPage', // sent → received in the page: the channel (SCTP/DTLS or WebSocket, both stacks)
  'pageToSandbox', // received → handed to the sandbox: decoding, app lookup in the page
  'sandboxToHandler', // handed over → handler started: the cross-process hop(s) into the worker
  'handler', // the app's fetch() until its Response
  'handlerToPage', // Response → head back in the page: the hop(s) back
  'pageOut', // head in the page → RES_HEAD queued on the session
  'toIngress', // queued in the page → head received at the ingress: flush and the channel back
  'ingressOut', // head received → last byte to the client
] as const;
export type WaterfallSegment = (typeof WATERFALL_SEGMENTS)[number];

/** Microseconds per segment. */
export type Waterfall = Record<WaterfallSegment, number>;

/**
 * The waterfall of one request, in µs (rounded to 0.1). `offsetMs` is the host's clock minus
 * the ingress's. A host stamp of 0 (unknown to that host) takes the one before it, so its
 * segment is 0 and the time lands in the next.
 */
export function waterfallOf(ingress: IngressTimes, host: HostTimes, offsetMs: number): Waterfall {
  const h = [host.received, host.toSandbox, host.handlerStart, host.handlerHead, host.headInPage, host.sent];
  for (let i = 1; i < h.length; i++) if (!(h[i]! > 0)) h[i] = h[i - 1]!;
  const at = h.map((t) => t - offsetMs);
  const points = [ingress.accepted, ingress.framed, ingress.sent, ...at, ingress.headReceived, ingress.lastByte];
  const out = {} as Waterfall;
  WATERFALL_SEGMENTS.forEach((name, i) => {
    out[name] = Math.round((points[i + 1]! - points[i]!) * 10_000) / 10;
  });
  return out;
}
