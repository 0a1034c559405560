/**
 * The signaling service: a WebSocket broker that introduces hosts (browser tabs) to ingresses
 * and relays their WebRTC offers, answers and candidates.
 *
 * Node code imports from here. The browser bundle imports `signaling/client.ts` directly, since
 * this index also pulls in the server and node:crypto.
 */
export { SIGNALING_ERRORS, SignalingError, isSignalingErrorCode, type SignalingErrorCode } from './errors.ts';
export { MAX_TOKEN_LENGTH, MIN_SECRET_LENGTH, mintToken, verifyToken, type Claims, type MintClaims, type Role } from './token.ts';
export {
  MAX_DEPTH,
  MAX_ID_LENGTH,
  MAX_INFO_BYTES,
  parseClientMessage,
  parseServerMessage,
  type ClientMessage,
  type ErrorMessage,
  type HelloMessage,
  type IceMessage,
  type IceServer,
  type JoinMessage,
  type LeaveMessage,
  type ParseResult,
  type PeerInfo,
  type PeerRole,
  type ServerMessage,
  type SignalMessage,
  type SignalRequest,
  type WelcomeMessage,
} from './messages.ts';
export type { LeaveReason } from './signaling-hub.ts';
export { HEALTH_PATH, SIGNAL_PATH, createSignalingServer, type SignalingServer, type SignalingServerOptions } from './server.ts';
export {
  SignalingClient,
  type BackoffOptions,
  type SignalingClientOptions,
  type SignalingClientState,
  type WebSocketConstructorLike,
  type WebSocketLike,
  type WebSocketLikeEventMap,
} from './client.ts';
export { AppStore, APP_NAME, MAX_BUNDLE_BYTES, type AppManifestEntry, type AppSummary, type AppVersion } from './app-store.ts';
export { checkBundle } from './control-api.ts';
export { iceServerSource, turnCredentials, TURN_TTL_DEFAULT_SECONDS, TURN_TTL_MIN_SECONDS, type IceConfig, type TurnCredentials } from './turn.ts';
export type { AppRef, AppsMessage } from './messages.ts';
