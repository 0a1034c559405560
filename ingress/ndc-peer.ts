import type { Offerer, OffererOptions } from './rtc-peer.ts';

/** The node-datachannel offerer. Being built: see the optional-backend work in issue 3. */
export async function createNdcOfferer(_options: OffererOptions): Promise<Offerer> {
  throw new Error('the node-datachannel backend is not available yet');
}
