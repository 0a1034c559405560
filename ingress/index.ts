/** The ingress: HTTP in, frames out to hosts over WebRTC data channels or WebSocket. */
export { createIngress, type Ingress, type IngressOptions, type Log } from './server.ts';
export { HostPool, type HostConnection, type HostPoolOptions } from './host-pool.ts';
export { PROXY_DEFAULTS, type ProxyOptions } from './proxy.ts';
export { CONNECTOR_DEFAULTS } from './host-connector.ts';
export { createOfferer, buildWeriftConfig, type Offerer, type OffererOptions, type IceServer } from './rtc-peer.ts';
export { WeriftChannel } from './werift-channel.ts';
export { NodeWebSocketChannel } from './ws-channel.ts';
export { POOL_DEFAULTS } from './host-pool.ts';
export { PEER_LOG_INTERVAL_MS, peerLog } from './peer-log.ts';
export { offererFactory, RTC_BACKENDS, type OffererFactory, type RtcBackend } from './rtc-backend.ts';
export { reachableIceServers, type LinkCandidate } from './offerer.ts';
export { loadNodeDatachannel } from './ndc-peer.ts';
export {
  checkKey,
  checkList,
  checkMetadata,
  expirationOf,
  KV_LIMITS,
  openKvStore,
  PgKvStore,
  RedisKvStore,
  SqliteKvStore,
  type KvEntry,
  type KvLimits,
  type KvListKey,
  type KvListOptions,
  type KvListResult,
  type KvPutOptions,
  type KvStore,
  type KvStoreOptions,
  type PgKvStoreOptions,
  type RedisKvStoreOptions,
  type SqliteKvStoreOptions,
} from './kv/index.ts';
export { namespaceOf } from './kv/service.ts';
export { openSqlStore, PgliteSqlStore, SQL_LIMITS, SqlService, type PgliteSqlStoreOptions, type SqlLimits, type SqlNamespace, type SqlStore } from './sql/index.ts';
export { listenMetrics, staticToken } from './metrics-endpoint.ts';
export { OtlpExporter, OTLP_DEFAULTS, type OtlpOptions, type SpanRecord } from './otlp.ts';
