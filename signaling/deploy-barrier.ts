/**
 * The deploy barrier: a control-plane write (deploy, rollback, delete, secrets) answers only once
 * every live signaling node has applied it, or after `deployBarrierMs`, and says which. Each node
 * publishes the control version its cache applied (`cv`, ControlCache.version); the cluster
 * wiring hands the live nodes' records in as `clusterNodes` (presence.nodes()). Without it this
 * is one node, which has applied a write once its own cache has read it.
 */
import type { ControlCache } from './control-cache.ts';

/** How long a write waits for every node to apply it. */
export const DEFAULT_DEPLOY_BARRIER_MS = 5000;
/** How often the live nodes' `cv` is read while waiting. */
export const DEFAULT_BARRIER_POLL_MS = 50;

/** How far a write has reached, in the write's answer (`dcdn deploy` prints it). */
export interface Propagation {
  /** Live signaling nodes. */
  nodes: number;
  /** Of those, how many have applied the write. */
  reached: number;
  /** The control version the write made. */
  atVersion: number;
  /** How long the wait took. */
  ms: number;
  /** Every node has it (false: the barrier's time ran out first). */
  complete: boolean;
}

export interface BarrierOptions {
  cache: ControlCache;
  /** Live nodes and the control version each applied; absent: this node alone. */
  clusterNodes?: (() => Promise<Array<{ id: string; cv: number }>>) | undefined;
  timeoutMs?: number;
  pollMs?: number;
}

/**
 * Waits until every node applied `atVersion`, at most `timeoutMs`.
 *
 * @example
 * ```ts
 * const atVersion = await store.version();
 * const propagated = await waitForPropagation(atVersion, { cache });
 * ```
 */
export async function waitForPropagation(atVersion: number, options: BarrierOptions): Promise<Propagation> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? DEFAULT_DEPLOY_BARRIER_MS;
  const pollMs = options.pollMs ?? DEFAULT_BARRIER_POLL_MS;
  const deadline = started + timeoutMs;
  const elapsed = () => Math.round(performance.now() - started);
  // This node reads its own write at once rather than waiting for its notification.
  await options.cache.refresh().catch(() => undefined);
  if (!options.clusterNodes) {
    const complete = options.cache.version >= atVersion || (await options.cache.waitForVersion(atVersion, Math.max(0, deadline - performance.now())));
    return { nodes: 1, reached: complete ? 1 : 0, atVersion, ms: elapsed(), complete };
  }
  let nodes: Array<{ id: string; cv: number }> = [];
  for (;;) {
    try {
      nodes = await options.clusterNodes();
    } catch {
      // Presence unreachable: keep the last answer and try again until the deadline.
    }
    const reached = nodes.filter((n) => n.cv >= atVersion).length;
    if ((nodes.length > 0 && reached === nodes.length) || performance.now() + pollMs > deadline) {
      return { nodes: nodes.length, reached, atVersion, ms: elapsed(), complete: nodes.length > 0 && reached === nodes.length };
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
