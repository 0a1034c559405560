/**
 * Property tests of the stream multiplexer (issue 15.18): a peer that sends any interleaving of
 * frames (heads, bodies, ends, RESET, CREDIT, frames for streams that never existed or already
 * ended, junk bytes) while this side opens, consumes and resets streams. Whatever happens, no
 * exception escapes the channel's message handler, every stream sees a well-formed sequence of
 * events (no data after its end or reset, one end, one reset), the peer never holds more
 * streams here than allowed, and once the session closes no stream is left open or unanswered.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Channel } from './channel.ts';
import { encodeFrame, helloFrame } from './codec.ts';
import { isErrorCode } from './errors.ts';
import { FrameType, type Frame } from './frames.ts';
import { Session } from './session.ts';
import type { Stream } from './stream.ts';

/** A channel the test drives by hand: messages in are delivered synchronously, out are kept. */
class HandChannel implements Channel {
  readonly maxMessageSize = 64 * 1024;
  lowWaterMark = 0;
  bufferedAmount = 0;
  isOpen = true;
  onmessage: ((data: Uint8Array) => void) | null = null;
  ondrain: (() => void) | null = null;
  onclose: ((reason: string) => void) | null = null;
  sent = 0;
  send(): void {
    this.sent++;
  }
  close(): void {
    this.isOpen = false;
  }
}

const sessions: Session[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
});

const MAX_INCOMING = 3;
const bytes = fc.uint8Array({ minLength: 0, maxLength: 64 });
/** Frames a peer might send; their stream id is filled in from a {@link Target} when sent. */
const peerFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant(FrameType.RES_HEAD), stream: fc.constant(1), status: fc.constantFrom(200, 404, 0, 999), headers: fc.constant([] as Array<[string, string]>), endStream: fc.boolean() }),
  fc.record({ type: fc.constant(FrameType.RES_BODY), stream: fc.constant(1), data: bytes }),
  fc.record({ type: fc.constant(FrameType.RES_END), stream: fc.constant(1) }),
  fc.record({ type: fc.constant(FrameType.REQ_HEAD), stream: fc.constant(1), method: fc.constant('GET'), url: fc.constant('/kv'), headers: fc.constant([] as Array<[string, string]>), endStream: fc.boolean(), app: fc.constant('') }),
  fc.record({ type: fc.constant(FrameType.REQ_BODY), stream: fc.constant(1), data: bytes }),
  fc.record({ type: fc.constant(FrameType.REQ_END), stream: fc.constant(1) }),
  fc.record({ type: fc.constant(FrameType.RESET), stream: fc.constant(1), code: fc.constantFrom('HOST_HANDLER_ERROR', 'PROTO_CANCELLED', 'NOT_A_CODE'), message: fc.string({ maxLength: 8 }) }),
  fc.record({ type: fc.constant(FrameType.CREDIT), stream: fc.constant(1), bytes: fc.integer({ min: 1, max: 0x7fffffff }) }),
  fc.record({ type: fc.constantFrom(FrameType.PING, FrameType.PONG), stream: fc.constant(0 as const), nonce: fc.nat() }),
) as fc.Arbitrary<Frame>;

/** Which stream a peer frame names: one of ours, one the peer opened, the peer's next id, or any id. */
type Target = { t: 'ours'; n: number } | { t: 'theirs'; n: number } | { t: 'next' } | { t: 'raw'; id: number };
const target: fc.Arbitrary<Target> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('ours' as const), n: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('theirs' as const), n: fc.nat() }) },
  { weight: 2, arbitrary: fc.constant({ t: 'next' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('raw' as const), id: fc.integer({ min: 1, max: 40 }) }) },
);

type Command =
  | { kind: 'peer'; frames: Array<{ frame: Frame; target: Target }> }
  | { kind: 'junk'; bytes: Uint8Array }
  | { kind: 'peer-open'; endStream: boolean }
  | { kind: 'open'; body: boolean }
  | { kind: 'reset'; which: number }
  | { kind: 'consume'; which: number; n: number }
  | { kind: 'write'; which: number; n: number }
  | { kind: 'end'; which: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('peer' as const), frames: fc.array(fc.record({ frame: peerFrame, target }), { minLength: 1, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('peer-open' as const), endStream: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('junk' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('open' as const), body: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), which: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('consume' as const), which: fc.nat(), n: fc.integer({ min: 1, max: 200_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('write' as const), which: fc.nat(), n: fc.integer({ min: 1, max: 100 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), which: fc.nat() }) },
);

/** What one stream reported, in order. */
type Events = string[];

function watch(stream: Stream, log: Events): void {
  stream.onhead = () => log.push('head');
  stream.ondata = () => log.push('data');
  stream.onend = () => log.push('end');
  stream.onreset = (e) => log.push(`reset:${e.code}`);
}

/** The events of one stream make sense: nothing after a reset, no data after the end, one end. */
function wellFormed(log: Events): boolean {
  const resets = log.filter((e) => e.startsWith('reset')).length;
  const ends = log.filter((e) => e === 'end').length;
  if (resets > 1 || ends > 1 || log.filter((e) => e === 'head').length > 1) return false;
  const reset = log.findIndex((e) => e.startsWith('reset'));
  if (reset !== -1 && reset !== log.length - 1) return false;
  const end = log.indexOf('end');
  return end === -1 || !log.slice(end + 1).some((e) => e === 'data' || e === 'head');
}

describe('the session under any interleaving of peer frames and local actions', () => {
  it('keeps every stream well-formed, within limits, and leaks none', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 40 }), (commands) => {
        const channel = new HandChannel();
        const session = new Session(channel, { role: 'client', maxIncomingStreams: MAX_INCOMING, heartbeatTimeoutMs: 60_000, helloTimeoutMs: 60_000, receiveWindow: 64 * 1024 });
        sessions.push(session);
        const deliver = (data: Uint8Array) => {
          // No exception may escape the message handler: a transport would crash or drop it.
          channel.onmessage!(data);
        };
        deliver(encodeFrame(helloFrame(64 * 1024, 'fuzz-peer')));
        const ours: Array<{ stream: Stream; log: Events }> = [];
        const theirs: Array<{ stream: Stream; log: Events }> = [];
        const resetHere = new Set<Stream>();
        let nextPeerId = 0;
        session.onstream = (stream) => {
          const log: Events = [];
          watch(stream, log);
          theirs.push({ stream, log });
        };
        const pick = (n: number) => (ours.length ? ours[n % ours.length]! : undefined);
        for (const c of commands) {
          if (session.isClosed) break;
          switch (c.kind) {
            case 'peer':
              for (const { frame: generated, target: to } of c.frames) {
                const frame = { ...generated }; // generated values are reused while shrinking
                if (frame.stream !== 0) {
                  const id =
                    to.t === 'ours' ? (pick(to.n)?.stream.id ?? 1)
                    : to.t === 'theirs' ? (theirs.length ? theirs[to.n % theirs.length]!.stream.id : 2)
                    : to.t === 'next' ? (nextPeerId += 2)
                    : to.id;
                  (frame as { stream: number }).stream = id;
                }
                deliver(encodeFrame(frame));
              }
              break;
            case 'junk':
              deliver(c.bytes);
              break;
            case 'peer-open':
              deliver(encodeFrame({ type: FrameType.REQ_HEAD, stream: (nextPeerId += 2), method: 'GET', url: '/kv', headers: [], endStream: c.endStream, app: '' }));
              break;
            case 'open': {
              const stream = session.open({ method: 'POST', url: '/', headers: [] }, !c.body);
              const log: Events = [];
              watch(stream, log);
              ours.push({ stream, log });
              break;
            }
            case 'reset': {
              const s = pick(c.which)?.stream;
              if (s && !s.closed) resetHere.add(s);
              s?.reset('PROTO_CANCELLED', 'fuzz');
              break;
            }
            case 'consume':
              pick(c.which)?.stream.consume(c.n);
              break;
            case 'write': {
              const s = pick(c.which)?.stream;
              if (s?.writable) void s.write(new Uint8Array(c.n)).catch(() => {});
              break;
            }
            case 'end': {
              const s = pick(c.which)?.stream;
              if (s?.writable) s.end();
              break;
            }
          }
          const openIncoming = theirs.filter((t) => !t.stream.closed).length;
          expect(openIncoming).toBeLessThanOrEqual(MAX_INCOMING);
          expect(session.openStreams).toBe(ours.filter((o) => !o.stream.closed).length + openIncoming);
        }
        if (session.isClosed) expect(isErrorCode(session.closeError!.code)).toBe(true);
        for (const { log } of [...ours, ...theirs]) expect(wellFormed(log), log.join(' ')).toBe(true);
        // Closing fails whatever is still open: every stream ends up answered, none is left.
        session.close();
        expect(session.openStreams).toBe(0);
        for (const { stream, log } of ours) {
          expect(stream.closed).toBe(true);
          // Our own reset is not reported back to us; every other ending is: no stream is left
          // without an answer for its owner to act on.
          if (!resetHere.has(stream)) expect(log.some((e) => e === 'end' || e.startsWith('reset')), log.join(' ')).toBe(true);
        }
        for (const { log } of [...ours, ...theirs]) expect(wellFormed(log), log.join(' ')).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});
