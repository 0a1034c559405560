/**
 * Property tests of the frame decoder (issue 15.18): what a hostile peer's bytes can do to it.
 * Run counts are fixed so a CI run takes a few seconds; a counterexample fast-check finds goes
 * into codec.corpus.test.ts as a literal.
 */
import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrame, forEachFrame, concatFrames } from './codec.ts';
import { errorCodeOf } from './errors.ts';
import { FrameType, LIMITS, LOG_LEVELS, type Frame, type HeaderList } from './frames.ts';
import { headProblem } from './head-limits.ts';

/** The only ways decoding may fail. */
const DECODER_CODES = new Set(['PROTO_DECODE', 'PROTO_FRAME_INVALID']);

/** Decodes, returning the frames or the code of the error; anything else thrown fails the test. */
function decodeOrCode(bytes: Uint8Array): Frame[] | string {
  try {
    return decodeFrames(bytes);
  } catch (err) {
    const code = errorCodeOf(err);
    if (!code || !DECODER_CODES.has(code)) throw err;
    return code;
  }
}

/** Any Unicode text (every code point, no lone surrogates: those are the corpus's business). */
const text = (maxLength: number) => fc.string({ unit: 'binary', maxLength });
const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const streamId = fc.integer({ min: 1, max: LIMITS.maxStreamId });
const headers: fc.Arbitrary<HeaderList> = fc.array(fc.tuple(token, text(40)), { maxLength: 12 });
const window = fc.integer({ min: 1, max: LIMITS.maxWindow });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** A clock reading as hosts send them: epoch ms with fractions, or 0; never -0 (msgpack keeps the sign, toEqual tells them apart). */
const time = fc.oneof(fc.constant(0), fc.double({ min: 1, max: 4e12, noNaN: true }));

/** Every frame type with valid fields. */
export const validFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant(FrameType.HELLO), stream: fc.constant(0 as const), version: fc.integer({ min: 0, max: 0xffff }), receiveWindow: window, agent: text(40) }),
  fc.record({ type: fc.constant(FrameType.REQ_HEAD), stream: streamId, method: fc.constantFrom('GET', 'POST', 'PROPFIND', 'X-Y'), url: fc.webUrl(), headers, endStream: fc.boolean(), app: fc.stringMatching(/^[a-z0-9-]{0,20}$/) }),
  fc.record({ type: fc.constant(FrameType.RES_HEAD), stream: streamId, status: fc.integer({ min: 0, max: 999 }), headers, endStream: fc.boolean() }),
  fc.record({ type: fc.constantFrom(FrameType.REQ_BODY, FrameType.RES_BODY), stream: streamId, data: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constantFrom(FrameType.REQ_END, FrameType.RES_END), stream: streamId }),
  fc.record({ type: fc.constant(FrameType.RESET), stream: streamId, code: fc.stringMatching(/^[A-Z_]{0,64}$/), message: text(200) }),
  fc.record({ type: fc.constant(FrameType.ERROR), stream: fc.constant(0 as const), code: fc.stringMatching(/^[A-Z_]{0,64}$/), message: text(200) }),
  fc.record({ type: fc.constant(FrameType.CREDIT), stream: streamId, bytes: window }),
  fc.record({ type: fc.constantFrom(FrameType.PING, FrameType.PONG), stream: fc.constant(0 as const), nonce: u32 }),
  fc.record({ type: fc.constant(FrameType.LOG), stream: fc.constant(0 as const), requestId: fc.stringMatching(/^[0-9a-f]{0,64}$/), level: fc.constantFrom(...LOG_LEVELS), text: text(200), cutLines: window, cutBytes: window }),
  fc.record({ type: fc.constant(FrameType.WS_DATA), stream: streamId, binary: fc.boolean(), fin: fc.boolean(), data: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant(FrameType.WS_CLOSE), stream: streamId, code: fc.integer({ min: 0, max: LIMITS.wsMaxCode }), reason: text(60) }),
  fc.record({ type: fc.constant(FrameType.TIMING), stream: streamId, received: time, toSandbox: time, handlerStart: time, handlerHead: time, headInPage: time, sent: time }),
  fc.record({ type: fc.constant(FrameType.TIMING_ASK), stream: streamId }),
) as fc.Arbitrary<Frame>;

/** Frames compare with body bytes as plain arrays (decoded bodies are views into the message). */
const plain = (frames: Frame[]) => frames.map((f) => ('data' in f ? { ...f, data: [...f.data] } : f));

describe('the frame decoder under arbitrary input', () => {
  it('round-trips any sequence of valid frames packed into one message', () => {
    fc.assert(
      fc.property(fc.array(validFrame, { minLength: 1, maxLength: 8 }), (frames) => {
        expect(plain(decodeFrames(concatFrames(frames.map(encodeFrame))))).toEqual(plain(frames));
      }),
      { numRuns: 500 },
    );
  });

  it('answers arbitrary bytes with frames or a coded error, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        decodeOrCode(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('answers any msgpack value (maps, nesting, floats, big numbers) with frames or a coded error', () => {
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })),
      node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 6 }), fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 4 })),
    })).node;
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 4 }), (values) => {
        decodeOrCode(concatFrames(values.map((v) => pack(v) as Uint8Array)));
      }),
      { numRuns: 1500 },
    );
  });

  it('answers valid frames with bytes flipped, cut or spliced with frames or a coded error', () => {
    const mutated = fc
      .tuple(fc.array(validFrame, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat())
      .map(([frames, flips, cut]) => {
        const bytes = concatFrames(frames.map(encodeFrame)).slice();
        for (const [at, b] of flips) bytes[at % bytes.length] = b;
        return bytes.subarray(0, bytes.length - (cut % Math.min(4, bytes.length)));
      });
    fc.assert(fc.property(mutated, (bytes) => void decodeOrCode(bytes)), { numRuns: 3000 });
  });

  it('lets one invalid frame fail alone: the frames after it still decode', () => {
    fc.assert(
      fc.property(validFrame, validFrame, (before, after) => {
        const invalid = pack([FrameType.RES_HEAD, 3, 'not a status', [], false]) as Uint8Array;
        const seen: Frame[] = [];
        const refused: string[] = [];
        forEachFrame(concatFrames([encodeFrame(before), invalid, encodeFrame(after)]), (f) => seen.push(f), (e) => refused.push(e.code));
        expect(plain(seen)).toEqual(plain([before, after]));
        expect(refused).toEqual(['PROTO_FRAME_INVALID']);
      }),
      { numRuns: 300 },
    );
  });
});

describe('headProblem() agrees with the decoder', () => {
  // Header lists near the limits: counts around 256, values around 16 KiB, totals around 64 K.
  const nearLimits = fc.record({
    count: fc.integer({ min: 0, max: LIMITS.headerCount + 4 }),
    valueLength: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: LIMITS.headerLength - 2, max: LIMITS.headerLength + 2 })),
    big: fc.integer({ min: 0, max: 6 }),
    urlLength: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: LIMITS.urlLength - 2, max: LIMITS.urlLength + 2 })),
  });
  it('a request head passes headProblem() exactly when the peer decodes it', () => {
    fc.assert(
      fc.property(nearLimits, ({ count, valueLength, big, urlLength }) => {
        const list: HeaderList = Array.from({ length: count }, (_, i) => [`h${i}`, i < big ? 'v'.repeat(valueLength) : 'v']);
        const url = `/${'a'.repeat(urlLength - 1)}`;
        const frame: Frame = { type: FrameType.REQ_HEAD, stream: 1, method: 'GET', url, headers: list, endStream: true, app: '' };
        const decoded = decodeOrCode(encodeFrame(frame));
        expect(headProblem(url, list) === null).toBe(Array.isArray(decoded));
        // Whatever passes fits in one 256 KiB message.
        if (headProblem(url, list) === null) expect(encodeFrame(frame).byteLength).toBeLessThanOrEqual(256 * 1024);
      }),
      { numRuns: 300 },
    );
  });
});
