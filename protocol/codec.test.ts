import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrame, forEachFrame } from './codec.ts';
import { FrameType, type BodyFrame, type Frame } from './frames.ts';

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const bytes = (h: string) => Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));

// Golden bytes: plain msgpack arrays, written out so a change of encoding is a visible diff.
// Each was worked out by hand from docs/protocol.md's field table and the msgpack spec
// (fixarray 0x90|n, positive fixint, fixstr 0xa0|len, bin8 0xc4 len, uint16 0xcd, uint32 0xce,
// true 0xc3, false 0xc2), never by running the encoder under test.
const golden: Array<[string, Frame, string]> = [
  ['HELLO', { type: FrameType.HELLO, stream: 0, version: 1, receiveWindow: 262144, agent: 'dcdn' }, '95000001ce00040000a46463646e'],
  [
    'REQ_HEAD',
    { type: FrameType.REQ_HEAD, stream: 1, method: 'GET', url: '/', headers: [['host', 'a']], endStream: true, app: 'hi' },
    '970101a3474554a12f92a4686f7374a161c3a26869',
  ],
  // [2, 1, bin 4 bytes]
  ['REQ_BODY', { type: FrameType.REQ_BODY, stream: 1, data: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) }, '930201c404deadbeef'],
  // [3, 1]
  ['REQ_END', { type: FrameType.REQ_END, stream: 1 }, '920301'],
  ['RES_HEAD', { type: FrameType.RES_HEAD, stream: 3, status: 200, headers: [], endStream: false }, '950403ccc890c2'],
  ['RES_BODY', { type: FrameType.RES_BODY, stream: 3, data: new Uint8Array([1, 2, 3]) }, '930503c403010203'],
  ['RES_END', { type: FrameType.RES_END, stream: 3 }, '920603'],
  ['RESET', { type: FrameType.RESET, stream: 3, code: 'X', message: '' }, '940703a158a0'],
  // [8, 0, "PROTO_HEARTBEAT_TIMEOUT" (23 bytes: fixstr 0xb7), "bye"]
  [
    'ERROR',
    { type: FrameType.ERROR, stream: 0, code: 'PROTO_HEARTBEAT_TIMEOUT', message: 'bye' },
    '940800' + 'b7' + '50524f544f5f' + '484541525442454154' + '5f' + '54494d454f5554' + 'a3627965',
  ],
  ['CREDIT', { type: FrameType.CREDIT, stream: 3, bytes: 131072 }, '930903ce00020000'],
  ['PING', { type: FrameType.PING, stream: 0, nonce: 7 }, '930a0007'],
  // [11, 0, 300]: 300 needs uint16 (0xcd 0x012c)
  ['PONG', { type: FrameType.PONG, stream: 0, nonce: 300 }, '930b00cd012c'],
  // [12, 0, "ab", "log", "hi", 0, 0] (version 2)
  ['LOG', { type: FrameType.LOG, stream: 0, requestId: 'ab', level: 'log', text: 'hi', cutLines: 0, cutBytes: 0 }, '970c00a26162a36c6f67a268690000'],
  // [12, 0, "ab", "cut", "", 3, 300]
  ['LOG cut', { type: FrameType.LOG, stream: 0, requestId: 'ab', level: 'cut', text: '', cutLines: 3, cutBytes: 300 }, '970c00a26162a3637574a003cd012c'],
  // [13, 1, 3 (binary|fin), bin 2 bytes] (version 3)
  ['WS_DATA', { type: FrameType.WS_DATA, stream: 1, binary: true, fin: true, data: new Uint8Array([0x68, 0x69]) }, '940d0103c4026869'],
  // [13, 2, 0 (text, more to come), bin 0 bytes]
  ['WS_DATA piece', { type: FrameType.WS_DATA, stream: 2, binary: false, fin: false, data: new Uint8Array(0) }, '940d0200c400'],
  // [14, 1, 1000 (uint16 0x03e8), "bye"]
  ['WS_CLOSE', { type: FrameType.WS_CLOSE, stream: 1, code: 1000, reason: 'bye' }, '940e01cd03e8a3627965'],
  // [16, 3, 1.5, 2, 0, 0, 0, 3] (version 3): 1.5 as float64 (0xcb 3ff8000000000000)
  [
    'TIMING',
    { type: FrameType.TIMING, stream: 3, received: 1.5, toSandbox: 2, handlerStart: 0, handlerHead: 0, headInPage: 0, sent: 3 },
    '981003' + 'cb3ff8000000000000' + '02000000' + '03',
  ],
  // [17, 3]
  ['TIMING_ASK', { type: FrameType.TIMING_ASK, stream: 3 }, '921103'],
];

describe('codec', () => {
  it('has a golden for every frame type', () => {
    expect([...new Set(golden.map(([, f]) => f.type))].sort((a, b) => a - b)).toEqual(Object.values(FrameType).sort((a, b) => a - b));
  });

  for (const [name, frame, wire] of golden) {
    it(`encodes ${name} to its golden bytes and decodes them back`, () => {
      expect(hex(encodeFrame(frame))).toBe(wire);
      expect(decodeFrames(bytes(wire))).toEqual([frame]);
    });
  }

  it('agrees with msgpackr in both directions', () => {
    for (const [, frame, wire] of golden) {
      const viaMsgpackr = pack(unpack(Buffer.from(bytes(wire))));
      expect(decodeFrames(new Uint8Array(viaMsgpackr))).toEqual([frame]);
    }
  });

  it('keeps repeated headers in order', () => {
    const headers: Array<[string, string]> = [['set-cookie', 'a=1'], ['x', 'y'], ['set-cookie', 'b=2']];
    const [f] = decodeFrames(encodeFrame({ type: FrameType.RES_HEAD, stream: 2, status: 200, headers, endStream: false }));
    expect(f).toMatchObject({ headers });
  });

  it('decodes several frames packed back to back in one message', () => {
    const msg = bytes('930503c403010203' + '920603' + '930a0007');
    expect(decodeFrames(msg).map((f) => f.type)).toEqual([FrameType.RES_BODY, FrameType.RES_END, FrameType.PING]);
  });

  it('returns body bytes as views of the message, without copying', () => {
    const msg = bytes('930503c403010203');
    const [f] = decodeFrames(msg) as [BodyFrame];
    expect(f.data.buffer).toBe(msg.buffer);
  });
});

describe('codec on hostile input', () => {
  const decodeCode = (h: string) => {
    try {
      decodeFrames(bytes(h));
      return 'ok';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };

  it('rejects a truncated message', () => expect(decodeCode('930503c40501')).toBe('PROTO_DECODE'));
  it('rejects a bin whose declared length exceeds the message', () => expect(decodeCode('930503c6ffffffff00')).toBe('PROTO_DECODE'));
  it('rejects an array whose declared length exceeds the message, before allocating it', () =>
    expect(decodeCode('dd7fffffff01')).toBe('PROTO_DECODE'));
  it('rejects arrays nested deeper than a frame needs', () => expect(decodeCode('92919190')).toBe('PROTO_DECODE'));
  it('rejects a deep nesting bomb without exhausting the stack', () => expect(decodeCode('91'.repeat(100_000) + '90')).toBe('PROTO_DECODE'));
  it('rejects maps, so no __proto__ key can reach an object', () => {
    // {"__proto__": {"polluted": 1}} inside a frame
    const map = '81a95f5f70726f746f5f5f81a8706f6c6c7574656401';
    expect(decodeCode('930503' + map)).toBe('PROTO_DECODE');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  it('rejects extension types (msgpackr would build Errors, RegExps, records)', () => {
    expect(decodeCode('d4650100')).toBe('PROTO_DECODE');
    expect(decodeCode('d57201a0')).toBe('PROTO_DECODE');
  });
  it('rejects strings that are not UTF-8', () => expect(decodeCode('940703a2c328a0')).toBe('PROTO_DECODE'));
  it('rejects a frame with the wrong field types', () => expect(decodeCode('930503a3616263')).toBe('PROTO_FRAME_INVALID'));
  it('rejects unknown frame types', () => expect(decodeCode('92630101')).toBe('PROTO_FRAME_INVALID'));
  it('rejects a method with characters outside the token grammar', () => {
    const f = encodeFrame({ type: FrameType.REQ_HEAD, stream: 1, method: 'G T', url: '/', headers: [], endStream: true, app: '' });
    expect(() => decodeFrames(f)).toThrow(expect.objectContaining({ code: 'PROTO_FRAME_INVALID' }));
  });
  it('rejects stream-level frames on stream 0 and session frames on a stream', () => {
    expect(decodeCode('920600')).toBe('PROTO_FRAME_INVALID');
    expect(decodeCode('930a0107')).toBe('PROTO_FRAME_INVALID');
  });

  it('reports an invalid frame with its stream id and goes on with the next frame', () => {
    const seen: number[] = [];
    const invalid: Array<number | undefined> = [];
    forEachFrame(
      bytes('930505a3616263' + '920607'),
      (f) => seen.push(f.stream),
      (e) => invalid.push(e.stream),
    );
    expect(invalid).toEqual([5]);
    expect(seen).toEqual([7]);
  });
});
