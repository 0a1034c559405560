/**
 * The signaling service: the Node WebSocket broker that introduces hosts (browser tabs) to
 * ingresses and relays their WebRTC offers, answers and candidates, and the control plane (app
 * store, deploys, secrets, bans, TURN credentials).
 *
 * Its wire contract (messages, the runtime-neutral client, trust rules, app config, error codes)
 * lives in protocol/, which the ingress and the tab import instead of this folder.
 */
export { MAX_TOKEN_LENGTH, MIN_SECRET_LENGTH, mintToken, verifyToken, type Claims, type MintClaims, type Role } from './token.ts';
export { HEALTH_PATH, SIGNAL_PATH, createSignalingServer, type SignalingServer, type SignalingServerOptions } from './server.ts';
export { INVITE_GRACE_MS, SIGNAL_RATE_DEFAULTS, type HostSummary, type SignalKind } from './signaling-hub.ts';
export { AppStore, APP_NAME, MAX_BUNDLE_BYTES, type AppManifestEntry, type AppSummary, type AppVersion } from './app-store.ts';
export { BanList, type Ban, type BanKind } from './bans.ts';
export type { ControlChange, ControlStore } from './control-store.ts';
export { SqliteControlStore } from './sqlite-control-store.ts';
export { openControlStore, redactControlStore } from './open-control-store.ts';
export type { PgControlStore, PgControlStoreOptions } from './pg-control-store.ts';
export { ControlCache, DEFAULT_CODE_CACHE_BYTES, type ControlCacheChange } from './control-cache.ts';
export { DEFAULT_DEPLOY_BARRIER_MS, waitForPropagation, type Propagation } from './deploy-barrier.ts';
export { checkBundle } from './control-api.ts';
export { iceServerSource, turnCredentials, TURN_TTL_DEFAULT_SECONDS, TURN_TTL_MIN_SECONDS, type IceConfig, type TurnCredentials } from './turn.ts';
export { makePrivateDir, preparePrivateDbFile, tightenPrivateTree, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, type TightenedMode } from './private-files.ts';
export { DEFAULT_ROLLOUT_TIMEOUT_MS, MAX_ROLLOUT_WAIT_MS, describeRollout, rolloutOf, type HostReport, type HostRollout, type Rollout } from './rollout.ts';
export { connectRedisCluster, type RedisClusterOptions } from './cluster/redis.ts';
export { REDIS_CLUSTER_TIMINGS, type RedisClusterTimings } from './cluster/redis-link.ts';
export { clusterParts, defaultNodeId, type ClusterOptions } from './cluster/connect.ts';
export { createMemoryCluster } from './cluster/memory.ts';
export { Directory, type DirectoryChange } from './cluster/directory.ts';
export { PresenceLimitError, PresenceUnavailableError, type BusMessage, type ClusterEvent, type ClusterParts, type EphemeralStore, type NodeBus, type NodeRecord, type PresenceEntry, type PresenceStore } from './cluster/types.ts';
