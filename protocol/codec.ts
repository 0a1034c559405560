/**
 * Encoding and decoding of frames.
 *
 * Encoding uses msgpackr. Decoding does not: what arrives from a host is hostile input, and a
 * general msgpack decoder accepts far more than a frame can be (maps, extension types that build
 * Errors, RegExps, Sets and record structures, nesting to any depth, lengths it allocates before
 * checking). Frames are a small fixed subset of msgpack (nil, booleans, integers, strings, bin
 * and arrays nested at most two deep), so the decoder below reads exactly that subset, checks
 * every declared length against the bytes that remain before it allocates anything, and turns
 * anything else into a `PROTO_DECODE` error. A test checks that msgpackr and this decoder agree
 * on every frame type.
 */
import { Packr } from 'msgpackr';
import { concatBytes } from './bytes.ts';
import { DcdnError } from './errors.ts';
import { FrameType, LIMITS, LOG_LEVELS, PROTOCOL_VERSION, WS_BINARY, WS_FIN, type Frame, type HeaderList, type LogLevel } from './frames.ts';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const utf8 = new TextDecoder('utf-8', { fatal: true });
/**
 * Strings up to this many bytes that are all ASCII are decoded in JavaScript rather than by the
 * TextDecoder. Measured on short header strings: Chromium's TextDecoder takes 190-300 ns a call
 * (a trip into Blink), the loop below about 65 ns; Node's TextDecoder is the faster (55 ns vs
 * 70 ns), so Node keeps it. Bytes below 0x80 are valid UTF-8 that decodes to the same code
 * units, so the result is identical either way.
 */
const SHORT_ASCII = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node ? 0 : 64;

/** Encodes one frame as msgpack bytes. */
export function encodeFrame(frame: Frame): Uint8Array {
  // A view into msgpackr's buffer; msgpackr moves its offset past it, so later packs don't
  // overwrite it (pack.js: "update the offset so next serialization doesn't write over").
  return packr.pack(toWire(frame));
}

function toWire(f: Frame): unknown[] {
  switch (f.type) {
    case FrameType.HELLO:
      return [f.type, 0, f.version, f.receiveWindow, f.agent];
    case FrameType.REQ_HEAD:
      return [f.type, f.stream, f.method, f.url, flattenHeaders(f.headers), f.endStream, f.app];
    case FrameType.RES_HEAD:
      return [f.type, f.stream, f.status, flattenHeaders(f.headers), f.endStream];
    case FrameType.REQ_BODY:
    case FrameType.RES_BODY:
      return [f.type, f.stream, f.data];
    case FrameType.REQ_END:
    case FrameType.RES_END:
      return [f.type, f.stream];
    case FrameType.RESET:
    case FrameType.ERROR:
      return [f.type, f.stream, f.code, f.message];
    case FrameType.CREDIT:
      return [f.type, f.stream, f.bytes];
    case FrameType.PING:
    case FrameType.PONG:
      return [f.type, 0, f.nonce];
    case FrameType.LOG:
      return [f.type, 0, f.requestId, f.level, f.text, f.cutLines, f.cutBytes];
    case FrameType.WS_DATA:
      return [f.type, f.stream, (f.binary ? WS_BINARY : 0) | (f.fin ? WS_FIN : 0), f.data];
    case FrameType.WS_CLOSE:
      return [f.type, f.stream, f.code, f.reason];
    case FrameType.TIMING:
      return [f.type, f.stream, f.received, f.toSandbox, f.handlerStart, f.handlerHead, f.headInPage, f.sent];
    case FrameType.TIMING_ASK:
      return [f.type, f.stream];
  }
}

function flattenHeaders(headers: HeaderList): string[] {
  const flat: string[] = new Array(headers.length * 2);
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    flat[2 * i] = h[0];
    flat[2 * i + 1] = h[1];
  }
  return flat;
}

/** Packs frames back to back into one message, as the session does when it coalesces. */
export function concatFrames(parts: readonly Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

type Value = null | boolean | number | string | Uint8Array | Value[];

/**
 * Decodes every frame in one channel message. Bin fields are zero-copy views into `bytes`.
 * Throws `DcdnError` with `PROTO_DECODE` (not msgpack of the frame subset) or
 * `PROTO_FRAME_INVALID` (msgpack, but not a valid frame).
 */
export function decodeFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  forEachFrame(bytes, (f) => frames.push(f), (err) => {
    throw err;
  });
  return frames;
}

/**
 * Decodes one channel message frame by frame, as the session does. A frame that is valid
 * msgpack but not a valid frame goes to `onInvalid` and decoding goes on with the next one, so
 * one bad frame fails one stream; bytes that are not msgpack of the frame subset throw
 * `PROTO_DECODE`, since nothing after them can be trusted.
 */
export function forEachFrame(
  bytes: Uint8Array,
  onFrame: (frame: Frame) => void,
  onInvalid: (err: InvalidFrameError) => void,
): void {
  const reader = new Reader(bytes);
  while (reader.pos < bytes.byteLength) {
    const value = reader.read(0);
    let frame: Frame;
    try {
      frame = toFrame(value);
    } catch (err) {
      if (err instanceof InvalidFrameError) {
        onInvalid(err);
        continue;
      }
      throw err;
    }
    onFrame(frame);
  }
}

class Reader {
  pos = 0;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(n: number): number {
    const at = this.pos;
    if (n > this.#bytes.byteLength - at) throw decodeError('truncated message');
    this.pos = at + n;
    return at;
  }

  read(depth: number): Value {
    const t = this.#bytes[this.#need(1)]!;
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t >= 0xa0 && t <= 0xbf) return this.#str(t - 0xa0);
    if (t >= 0x90 && t <= 0x9f) return this.#array(t - 0x90, depth);
    const v = this.#view;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.#bin(v.getUint8(this.#need(1)));
      case 0xc5: return this.#bin(v.getUint16(this.#need(2)));
      case 0xc6: return this.#bin(v.getUint32(this.#need(4)));
      case 0xcb: return v.getFloat64(this.#need(8));
      case 0xcc: return v.getUint8(this.#need(1));
      case 0xcd: return v.getUint16(this.#need(2));
      case 0xce: return v.getUint32(this.#need(4));
      case 0xd0: return v.getInt8(this.#need(1));
      case 0xd1: return v.getInt16(this.#need(2));
      case 0xd2: return v.getInt32(this.#need(4));
      case 0xd9: return this.#str(v.getUint8(this.#need(1)));
      case 0xda: return this.#str(v.getUint16(this.#need(2)));
      case 0xdb: return this.#str(v.getUint32(this.#need(4)));
      case 0xdc: return this.#array(v.getUint16(this.#need(2)), depth);
      case 0xdd: return this.#array(v.getUint32(this.#need(4)), depth);
      default:
        // maps, extension types, 64-bit integers and float32 never occur in a frame
        throw decodeError(`msgpack type 0x${t.toString(16)} is not allowed in a frame`);
    }
  }

  #str(n: number): string {
    const at = this.#need(n);
    if (n <= SHORT_ASCII) {
      const bytes = this.#bytes;
      let out = '';
      let i = at;
      for (const end = at + n; i < end; i++) {
        const c = bytes[i]!;
        if (c >= 0x80) break;
        out += String.fromCharCode(c);
      }
      if (i === at + n) return out;
    }
    try {
      return utf8.decode(this.#bytes.subarray(at, at + n));
    } catch {
      throw decodeError('string is not valid UTF-8');
    }
  }

  #bin(n: number): Uint8Array {
    const at = this.#need(n);
    return this.#bytes.subarray(at, at + n);
  }

  #array(n: number, depth: number): Value[] {
    // A frame is an array that may hold one array (headers); nothing nests deeper.
    if (depth >= 2) throw decodeError('arrays nest too deep');
    // Every element takes at least one byte: refuse lengths the message cannot hold.
    if (n > this.#bytes.byteLength - this.pos) throw decodeError('array longer than the message');
    const out: Value[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.read(depth + 1);
    return out;
  }
}

function decodeError(message: string): DcdnError {
  return new DcdnError('PROTO_DECODE', message);
}

/** A frame that decoded as msgpack but is not a valid frame; `stream` names its stream if known. */
export class InvalidFrameError extends DcdnError {
  readonly stream: number | undefined;
  constructor(message: string, stream: number | undefined) {
    super('PROTO_FRAME_INVALID', message);
    this.stream = stream;
  }
}

/** A frame that is not valid: its stream is named unless it is 0 (session-level). */
function bad(type: Value | undefined, stream: number, what: string): never {
  throw new InvalidFrameError(`frame type ${String(type)}: ${what}`, stream === 0 ? undefined : stream);
}

function arity(v: Value[], n: number, stream: number): void {
  if (v.length !== n) bad(v[0], stream, `expected ${n} fields, got ${v.length}`);
}

function sessionLevel(type: Value | undefined, stream: number): void {
  if (stream !== 0) bad(type, stream, 'must be sent on stream 0');
}

function streamLevel(type: Value | undefined, stream: number): void {
  if (stream === 0) bad(type, stream, 'must not be sent on stream 0');
}

// Checks are plain functions, not closures made per frame: this runs for every frame received,
// and under tsx (which keeps function names) each closure also cost an Object.defineProperty.
function toFrame(v: Value): Frame {
  if (!Array.isArray(v) || v.length < 2) throw new InvalidFrameError('a frame must be an array [type, stream, ...]', undefined);
  const type = v[0];
  const stream = v[1];
  if (!isUint(stream, LIMITS.maxStreamId)) throw new InvalidFrameError('bad stream id', undefined);
  switch (type) {
    case FrameType.HELLO: {
      arity(v, 5, stream);
      sessionLevel(type, stream);
      const [, , version, receiveWindow, agent] = v;
      if (!isUint(version, 0xffff)) bad(type, stream, 'bad version');
      if (!isUint(receiveWindow, LIMITS.maxWindow) || receiveWindow === 0) bad(type, stream, 'bad receive window');
      if (!isStr(agent, LIMITS.agentLength)) bad(type, stream, 'bad agent');
      return { type, stream: 0, version: version as number, receiveWindow: receiveWindow as number, agent: agent as string };
    }
    case FrameType.REQ_HEAD: {
      arity(v, 7, stream);
      streamLevel(type, stream);
      const [, , method, url, headers, endStream, app] = v;
      if (!isStr(method, LIMITS.methodLength) || !METHOD.test(method as string)) bad(type, stream, 'bad method');
      if (!isStr(url, LIMITS.urlLength) || (url as string).length === 0) bad(type, stream, 'bad url');
      if (typeof endStream !== 'boolean') bad(type, stream, 'bad endStream');
      if (!isStr(app, LIMITS.appLength)) bad(type, stream, 'bad app');
      return { type, stream, method: method as string, url: url as string, headers: toHeaders(headers, type, stream, (url as string).length), endStream: endStream as boolean, app: app as string };
    }
    case FrameType.RES_HEAD: {
      arity(v, 5, stream);
      streamLevel(type, stream);
      const [, , status, headers, endStream] = v;
      if (!isUint(status, 999)) bad(type, stream, 'bad status');
      if (typeof endStream !== 'boolean') bad(type, stream, 'bad endStream');
      return { type, stream, status: status as number, headers: toHeaders(headers, type, stream, 0), endStream: endStream as boolean };
    }
    case FrameType.REQ_BODY:
    case FrameType.RES_BODY: {
      arity(v, 3, stream);
      streamLevel(type, stream);
      if (!(v[2] instanceof Uint8Array)) bad(type, stream, 'body must be bin');
      return { type, stream, data: v[2] as Uint8Array };
    }
    case FrameType.REQ_END:
    case FrameType.RES_END:
      arity(v, 2, stream);
      streamLevel(type, stream);
      return { type, stream };
    case FrameType.RESET:
    case FrameType.ERROR: {
      arity(v, 4, stream);
      if (type === FrameType.RESET) streamLevel(type, stream);
      else sessionLevel(type, stream);
      const [, , code, message] = v;
      if (!isStr(code, LIMITS.codeLength)) bad(type, stream, 'bad code');
      if (!isStr(message, LIMITS.messageLength)) bad(type, stream, 'bad message');
      return type === FrameType.RESET
        ? { type, stream, code: code as string, message: message as string }
        : { type, stream: 0, code: code as string, message: message as string };
    }
    case FrameType.CREDIT: {
      arity(v, 3, stream);
      streamLevel(type, stream);
      if (!isUint(v[2], LIMITS.maxWindow) || v[2] === 0) bad(type, stream, 'bad credit');
      return { type, stream, bytes: v[2] as number };
    }
    case FrameType.PING:
    case FrameType.PONG:
      arity(v, 3, stream);
      sessionLevel(type, stream);
      if (!isUint(v[2], 0xffffffff)) bad(type, stream, 'bad nonce');
      return { type, stream: 0, nonce: v[2] as number };
    case FrameType.LOG: {
      arity(v, 7, stream);
      sessionLevel(type, stream);
      const [, , requestId, level, text, cutLines, cutBytes] = v;
      if (!isStr(requestId, LIMITS.requestIdLength)) bad(type, stream, 'bad request id');
      if (!LOG_LEVELS.includes(level as LogLevel)) bad(type, stream, 'bad level');
      if (!isStr(text, LIMITS.logTextLength)) bad(type, stream, 'bad text');
      if (!isUint(cutLines, LIMITS.maxWindow) || !isUint(cutBytes, LIMITS.maxWindow)) bad(type, stream, 'bad cut counts');
      return { type, stream: 0, requestId: requestId as string, level: level as LogLevel, text: text as string, cutLines: cutLines as number, cutBytes: cutBytes as number };
    }
    case FrameType.WS_DATA: {
      arity(v, 4, stream);
      streamLevel(type, stream);
      const [, , flags, data] = v;
      if (!isUint(flags, WS_BINARY | WS_FIN)) bad(type, stream, 'bad flags');
      if (!(data instanceof Uint8Array)) bad(type, stream, 'data must be bin');
      return { type, stream, binary: ((flags as number) & WS_BINARY) !== 0, fin: ((flags as number) & WS_FIN) !== 0, data: data as Uint8Array };
    }
    case FrameType.WS_CLOSE: {
      arity(v, 4, stream);
      streamLevel(type, stream);
      const [, , code, reason] = v;
      if (!isUint(code, LIMITS.wsMaxCode)) bad(type, stream, 'bad close code');
      if (!isStr(reason, LIMITS.wsReasonLength)) bad(type, stream, 'bad close reason');
      return { type, stream, code: code as number, reason: reason as string };
    }
    case FrameType.TIMING: {
      arity(v, 8, stream);
      streamLevel(type, stream);
      for (let i = 2; i < 8; i++) if (!isTime(v[i])) bad(type, stream, 'times must be finite numbers >= 0');
      const [, , received, toSandbox, handlerStart, handlerHead, headInPage, sent] = v as number[];
      return { type, stream, received: received!, toSandbox: toSandbox!, handlerStart: handlerStart!, handlerHead: handlerHead!, headInPage: headInPage!, sent: sent! };
    }
    case FrameType.TIMING_ASK:
      arity(v, 2, stream);
      streamLevel(type, stream);
      return { type, stream };
    default:
      return bad(type, stream, 'unknown frame type');
  }
}

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A head's header list; `urlLength` counts towards the head's total (`LIMITS.headBytes`, head-limits.ts). */
function toHeaders(v: Value | undefined, type: Value | undefined, stream: number, urlLength: number): HeaderList {
  if (!Array.isArray(v) || v.length % 2 !== 0) return bad(type, stream, 'headers must be a flat name/value list');
  if (v.length > LIMITS.headerCount * 2) return bad(type, stream, 'too many headers');
  const out: HeaderList = new Array(v.length / 2);
  let total = urlLength;
  for (let i = 0; i < v.length; i += 2) {
    const name = v[i];
    const value = v[i + 1];
    if (!isStr(name, LIMITS.headerLength) || !isStr(value, LIMITS.headerLength)) return bad(type, stream, 'header names and values must be strings');
    total += (name as string).length + (value as string).length;
    out[i / 2] = [name as string, value as string];
  }
  if (total > LIMITS.headBytes) return bad(type, stream, 'head too large');
  return out;
}

function isUint(x: unknown, max: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
}

function isTime(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0;
}

function isStr(x: unknown, max: number): x is string {
  return typeof x === 'string' && x.length <= max;
}

/**
 * The HELLO this implementation sends. The agent is cut to `LIMITS.agentLength`: it carries a
 * host's name, which operators choose, and a HELLO the peer refuses closes the whole session.
 */
export function helloFrame(receiveWindow: number, agent: string): Frame {
  return { type: FrameType.HELLO, stream: 0, version: PROTOCOL_VERSION, receiveWindow, agent: agent.slice(0, LIMITS.agentLength) };
}
