import type { ProxyOptions } from './proxy.ts';

/**
 * The proxy's defaults (each documented on {@link ProxyOptions}). Apart from proxy.ts, which
 * loads the wire protocol, so that the CLI's help can show them at no cost.
 */
export const PROXY_DEFAULTS: Omit<ProxyOptions, 'forwarding' | 'router'> = {
  headTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  minBodyBytesPerSecond: 1024,
  bodyRateGraceMs: 10_000,
  maxBodyBytes: 100 * 1024 * 1024,
  maxUrlLength: 8192,
  maxHeaderBytes: 16 * 1024,
  retryIdempotent: true,
  idempotentAttempts: 3,
  lengthEndGraceMs: 1000,
};
