/**
 * The dcdn wire protocol: frames, codec, the stream multiplexer with flow control, and the
 * transport-neutral Channel. Free of Node and browser APIs; both sides import it.
 */
export type { Channel, TransportKind } from './channel.ts';
export { concatFrames, decodeFrames, encodeFrame, forEachFrame, InvalidFrameError } from './codec.ts';
export { APP_FAILURE_CODES, DcdnError, ERRORS, errorCodeOf, isErrorCode, statusOf, type ErrorCode } from './errors.ts';
export { BODY_FRAME_OVERHEAD, FrameType, LIMITS, PROTOCOL_VERSION, type Frame, type HeaderList } from './frames.ts';
export { headProblem, type HeadProblem } from './head-limits.ts';
export { parseLinkSignal, type LinkCandidate, type LinkSignal } from './link.ts';
export { createMemoryChannelPair, MemoryChannel, type MemoryChannelOptions } from './memory-channel.ts';
export { Session, SESSION_DEFAULTS, type SessionOptions, type SessionStats } from './session.ts';
export { streamBody } from './body.ts';
export { Stream, type RequestHead, type ResponseHead, type StreamError } from './stream.ts';
