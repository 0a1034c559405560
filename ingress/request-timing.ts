/**
 * The ingress's half of a timed request (docs/performance.md, "Waterfall"): stamps its own hops,
 * asks the host for the host's (TIMING_ASK / TIMING frames, protocol/frames.ts), keeps one clock
 * offset estimate per host session, and turns the lot into segments (protocol/waterfall.ts).
 *
 * Which requests are timed is decided per request by the caller (server.ts): those that start
 * while a `dcdn tail` subscriber asked for timing, and a sampled share (`timingSampleRate`).
 * An untimed request makes none of these objects and sends no extra frame.
 */
import type { ServerResponse } from 'node:http';
import { ClockOffset, waterfallOf, type HostTimes, type IngressTimes, type Session, type Stream, type Waterfall } from '../protocol/index.ts';

/** Ms since the epoch with sub-ms fractions, as both sides stamp (frames.ts HostTimes). */
export function ingressNow(): number {
  return performance.timeOrigin + performance.now();
}

/** One clock-offset estimate per host session; gone with the session. */
const offsets = new WeakMap<Session, ClockOffset>();

/** The offset estimate of a host session, for tests and health. */
export function clockOffsetOf(session: Session): ClockOffset | undefined {
  return offsets.get(session);
}

/** The timing of one request as the proxy goes through it (proxy.ts calls `opened` and `head`). */
export class RequestTiming {
  readonly #ingress: IngressTimes = { accepted: ingressNow(), framed: 0, sent: 0, headReceived: 0, lastByte: 0 };
  #host: HostTimes | null = null;
  #session: Session | null = null;
  /** Which attempt the stamps belong to: a retry's session must not stamp an earlier attempt's. */
  #attempt = 0;

  /** The request's stream was opened on `session` (each attempt; the last one counts). */
  opened(session: Session, stream: Stream): void {
    const attempt = ++this.#attempt;
    this.#ingress.framed = ingressNow();
    this.#ingress.sent = 0;
    this.#host = null;
    this.#session = null;
    if (!session.askTiming(stream)) return;
    this.#session = session;
    session.whenSent(() => {
      if (attempt === this.#attempt) this.#ingress.sent = ingressNow();
    });
    stream.ontiming = (times) => {
      this.#host = { received: times.received, toSandbox: times.toSandbox, handlerStart: times.handlerStart, handlerHead: times.handlerHead, headInPage: times.headInPage, sent: times.sent };
    };
  }

  /** The response head arrived. */
  head(): void {
    this.#ingress.headReceived = ingressNow();
  }

  /**
   * The answer was ended (`res.end()` just returned). When the socket took every byte at once,
   * now is when the last byte left; otherwise it is when the response finishes (`finish`).
   * Not `finish` always: Node emits it a tick later, after whatever else runs in this task (on
   * werift, the rest of the datagram's SCTP work), though the client has its bytes already.
   */
  ended(res: ServerResponse): void {
    if (res.writableLength === 0) this.#ingress.lastByte = ingressNow();
    else res.once('finish', () => (this.#ingress.lastByte = ingressNow()));
  }

  /**
   * The segments in µs, or null when the host sent no timestamps (a version-2 host, an error
   * before the head). Adds this request's exchange to its session's clock-offset estimate.
   */
  result(): Waterfall | null {
    const i = this.#ingress;
    const h = this.#host;
    const session = this.#session;
    if (!h || !session || !(i.sent > 0) || !(i.headReceived > 0) || !(i.lastByte > 0)) return null;
    let clock = offsets.get(session);
    if (!clock) offsets.set(session, (clock = new ClockOffset()));
    clock.add({ t0: i.sent, t1: h.received, t2: h.sent, t3: i.headReceived });
    const offset = clock.offsetMs;
    return offset === undefined ? null : waterfallOf(i, h, offset);
  }
}
