import { APP_OUTCOME_DEFAULTS } from './app-outcomes.ts';
import type { HostPoolOptions } from './host-pool.ts';

/**
 * The host pool's defaults (each documented on {@link HostPoolOptions}). Apart from host-pool.ts,
 * which loads the wire protocol (app-outcomes.ts imports nothing), so that the CLI's help can show them at no cost.
 */
export const POOL_DEFAULTS: Required<HostPoolOptions> = {
  ...APP_OUTCOME_DEFAULTS,
  maxInFlightPerHost: 128,
  maxInFlightPerVolunteer: 16,
  failureThreshold: 3,
  penaltyBaseMs: 1000,
  penaltyMaxMs: 60_000,
  penaltyDecayMs: 60_000,
};
