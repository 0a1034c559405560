/**
 * The dcdn wire contract: frames, codec, the stream multiplexer with flow control, the
 * transport-neutral Channel, the link signals, the signaling messages and their runtime-neutral
 * client, trust rules, app config, KV wire names and the one error registry. Free of Node and
 * browser-only APIs and of every other folder of the repository (test/boundaries.test.ts checks
 * it); the ingress, the tab and signaling all import it.
 */
export type { Channel, TransportKind } from './channel.ts';
export { concatFrames, decodeFrames, encodeFrame, forEachFrame, InvalidFrameError } from './codec.ts';
export { ClockOffset, CLOCK_OFFSET_WINDOW, sampleOffset, type ClockSample } from './clock-offset.ts';
export { waterfallOf, WATERFALL_SEGMENTS, type IngressTimes, type Waterfall, type WaterfallSegment } from './waterfall.ts';
export { EarlyMessages } from './early-messages.ts';
export { APP_FAILURE_CODES, DcdnError, ERRORS, errorCodeOf, isErrorCode, statusOf, type ErrorCode } from './errors.ts';
export { BODY_FRAME_OVERHEAD, FrameType, HOST_TIME_FIELDS, LIMITS, LOG_FRAME_VERSION, TIMING_FRAME_VERSION, type HostTimes, type TimingFrame, WS_FRAME_VERSION, WS_BINARY, WS_FIN, type WsDataFrame, type WsCloseFrame, LOG_LEVELS, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type Frame, type HeaderList, type LogFrame, type LogLevel } from './frames.ts';
export { LOG_LIMITS, LogBudget, utf8Length, type LogLimits } from './console-log.ts';
export { headProblem, type HeadProblem } from './head-limits.ts';
export { parseLinkSignal, WS_MAX_MESSAGE_SIZE, type LinkCandidate, type LinkSignal } from './link.ts';
export { createMemoryChannelPair, MemoryChannel, type MemoryChannelOptions } from './memory-channel.ts';
export { Session, SESSION_DEFAULTS, type SessionOptions, type SessionStats } from './session.ts';
export { streamBody } from './body.ts';
export { Stream, type RequestHead, type ResponseHead, type StreamError } from './stream.ts';
export { KV_HEADERS } from './kv-wire.ts';
export { fromWire, numberPlaceholders, SQL_HEADERS, toWire, type SqlMeta, type SqlWireRequest, type SqlWireResponse, type SqlWireResult, type WireValue } from './sql-wire.ts';
export { CACHE_HEADERS, CACHE_PATH_PREFIX } from './cache-wire.ts';
export { concatBytes } from './bytes.ts';
export type { CronRun } from './cron-run.ts';
export { SCHEDULED_HEADERS, SCHEDULED_METHOD, SCHEDULED_OK_STATUS, SCHEDULED_URL } from './scheduled-wire.ts';
export { parseRedisUrl, type RedisEndpoint } from './redis-url.ts';
export {
  BINDING_NAME,
  CAPABILITIES,
  DEFAULT_APP_CONFIG,
  MAX_CRON_LENGTH,
  MAX_CRONS,
  MAX_KV_BINDINGS,
  MAX_VAR_BYTES,
  MAX_VARS,
  parseAppConfig,
  type AppConfig,
  type Capability,
} from './app-config.ts';
export { APP_SCOPE_PREFIX, mayRun, OPERATOR_TRUST, trustFromScope, VOLUNTEER_ID_PREFIX, VOLUNTEER_SCOPE, volunteerHostId, volunteerName, volunteerScope, type HostTrust } from './trust.ts';
export { SIGNALING_ERRORS, SignalingError, isSignalingErrorCode, type SignalingErrorCode } from './signaling-errors.ts';
export {
  isLeaveReason,
  LEAVE_REASONS,
  MAX_CHECK_ERROR_LENGTH,
  MAX_DEPTH,
  MAX_ICE_SERVERS,
  MAX_ID_LENGTH,
  MAX_INFO_BYTES,
  MAX_STATUS_APPS,
  parseClientMessage,
  parseServerMessage,
  type AppRef,
  type AppsMessage,
  type AppStatus,
  type CheckedMessage,
  type CronMessage,
  type CronResultMessage,
  MAX_CRON_ERROR_LENGTH,
  type CheckMessage,
  type ClientMessage,
  type ErrorMessage,
  type HelloMessage,
  type IceMessage,
  type IceServer,
  type JoinMessage,
  type LeaveMessage,
  type LeaveReason,
  type ParseResult,
  type PeerInfo,
  type PeerRole,
  type ServerMessage,
  type SignalMessage,
  type SignalRequest,
  type StatusMessage,
  type UpdateMessage,
  type WelcomeMessage,
  type ClusterIngress,
  type ClusterMessage,
  type PeersMessage,
} from './signaling-messages.ts';
export { linkKey, MAX_HOST_ID_LENGTH } from './presence-key.ts';
export { assign, cyrb53, placementScore, type PlacementIngress } from './placement.ts';
export {
  SignalingClient,
  type BackoffOptions,
  type SignalingClientOptions,
  type SignalingClientState,
  type WebSocketConstructorLike,
  type WebSocketLike,
  type WebSocketLikeEventMap,
} from './signaling-client.ts';
export { BudgetTable, type Budget } from './budget-table.ts';
export { TokenBucket } from './token-bucket.ts';
