/**
 * The decoder reads short ASCII strings in JavaScript where the TextDecoder is slow (browsers,
 * codec.ts SHORT_ASCII); Node keeps the TextDecoder. Loads the codec as a browser would (no
 * `process.versions.node`) and checks both agree on every string, valid or not.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as nodeCodec from './codec.ts';
import { FrameType, type Frame } from './frames.ts';

let browserCodec: typeof nodeCodec;

beforeAll(async () => {
  const node = process.versions.node;
  Object.defineProperty(process.versions, 'node', { value: undefined, configurable: true });
  try {
    vi.resetModules();
    browserCodec = await import('./codec.ts');
  } finally {
    Object.defineProperty(process.versions, 'node', { value: node, configurable: true, enumerable: true });
  }
});

afterAll(() => {
  vi.resetModules();
});

const head = (url: string, headers: Array<[string, string]>): Frame => ({ type: FrameType.REQ_HEAD, stream: 1, method: 'GET', url, headers, endStream: true, app: '' });

describe('short ASCII strings in a browser', () => {
  it('decode as the TextDecoder would, at and around the length cut-off', () => {
    for (const n of [0, 1, 31, 63, 64, 65, 200]) {
      const ascii = Array.from({ length: n }, (_, i) => String.fromCharCode(0x20 + (i % 95))).join('');
      for (const value of [ascii, `${ascii}é`, `é${ascii}`, `${ascii.slice(0, n >> 1)}\u{1F600}${ascii.slice(n >> 1)}`, '\u0000\u007f']) {
        const frame = head(`/${value}`, [['x-v', value], [value || 'n', 'v']]);
        const bytes = nodeCodec.encodeFrame(frame);
        expect(browserCodec.decodeFrames(bytes)).toEqual(nodeCodec.decodeFrames(bytes));
        expect(browserCodec.decodeFrames(bytes)).toEqual([frame]);
      }
    }
  });

  it('still refuses invalid UTF-8 after an ASCII start', () => {
    // [3, 1] is REQ_END; here a RESET [7, 1, "ab\xff", ""] whose code is not UTF-8.
    const bad = Uint8Array.from([0x94, 0x07, 0x01, 0xa3, 0x61, 0x62, 0xff, 0xa0]);
    expect(() => nodeCodec.decodeFrames(bad)).toThrow(/UTF-8/);
    expect(() => browserCodec.decodeFrames(bad)).toThrow(/UTF-8/);
  });
});
