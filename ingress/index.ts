/** The ingress: HTTP in, frames out to hosts over WebRTC data channels or WebSocket. */
export { createIngress, type Ingress, type IngressOptions, type Log } from './server.ts';
export { HostPool, type HostConnection, type HostPoolOptions } from './host-pool.ts';
export { PROXY_DEFAULTS, type ProxyOptions } from './proxy.ts';
export { CONNECTOR_DEFAULTS } from './host-connector.ts';
export { createOfferer, buildWeriftConfig, type Offerer, type OffererOptions, type IceServer } from './rtc-peer.ts';
export { WeriftChannel } from './werift-channel.ts';
export { NodeWebSocketChannel } from './ws-channel.ts';
