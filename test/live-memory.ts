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

/**
 * {@link liveBytes} once V8's background threads have caught up: ArrayBuffers a collection
 * found dead are freed off the main thread, and on a loaded machine that lags, so a reading
 * taken at once still counts megabytes already garbage. The least of a few readings a turn
 * apart: memory really held shows in every one, garbage pending release only in some.
 */
export async function settledLiveBytes(readings = 3): Promise<number> {
  let least = liveBytes();
  for (let i = 1; i < readings; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    least = Math.min(least, liveBytes());
  }
  return least;
}
