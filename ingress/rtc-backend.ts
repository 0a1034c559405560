import type { Offerer, OffererOptions } from './rtc-peer.ts';

/** The WebRTC stacks the ingress can use. werift (pure JavaScript) is the default. */
export type RtcBackend = 'werift' | 'node-datachannel';
export const RTC_BACKENDS: readonly RtcBackend[] = ['werift', 'node-datachannel'];

/** Creates the offering side of one peer connection. */
export type OffererFactory = (options: OffererOptions) => Promise<Offerer>;

/**
 * The offerer factory of a backend. Each is imported on first use, so an ingress that never
 * uses node-datachannel never loads its native module (it is an optional dependency).
 */
export function offererFactory(backend: RtcBackend): OffererFactory {
  switch (backend) {
    case 'werift':
      return async (options) => (await import('./rtc-peer.ts')).createOfferer(options);
    case 'node-datachannel':
      return async (options) => (await import('./ndc-peer.ts')).createNdcOfferer(options);
  }
}
