import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Live memory of this process: JS heap plus ArrayBuffers and other external memory, measured
 * right after a full garbage collection. Unlike RSS, which also holds garbage not yet collected
 * and pages the allocator keeps, this only grows when something really holds on to bytes — a
 * queue without backpressure, a leak per stream — so a test can bound it tightly on a noisy
 * machine.
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export function liveBytes(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}
