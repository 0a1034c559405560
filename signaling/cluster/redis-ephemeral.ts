/**
 * Short-lived shared state in Redis: deploy-check candidates (`check:<id>`, expiring) and
 * cluster-wide rate limits (GCRA in one Lua script, key `rl:<bucket>`). When Redis cannot be
 * reached, `take` answers from a local token bucket per bucket name (fail-open per node: a
 * limit then holds per node, as on one machine), and says so once in the log.
 */
import { TokenBucket } from '../../protocol/index.ts';
import type { RedisLink } from './redis-link.ts';
import { PresenceUnavailableError, type EphemeralStore, type Rate } from './types.ts';

/** Most local fallback buckets kept during an outage; the oldest go first. */
const MAX_LOCAL_BUCKETS = 10_000;

export class RedisEphemeral implements EphemeralStore {
  readonly #link: RedisLink;
  readonly #local = new Map<string, TokenBucket>();
  #fallback = false;

  constructor(link: RedisLink) {
    this.#link = link;
  }

  async putCandidate(id: string, candidate: unknown, ttlMs: number): Promise<void> {
    const link = this.#link;
    await link.call('putCandidate', link.cmd.set(link.key(`check:${id}`), JSON.stringify(candidate), 'PX', Math.max(1, Math.ceil(ttlMs))));
  }

  async getCandidate(id: string): Promise<unknown | null> {
    const link = this.#link;
    const json = await link.call('getCandidate', link.cmd.get(link.key(`check:${id}`)));
    if (json === null) return null;
    try {
      return JSON.parse(json) as unknown;
    } catch {
      throw new PresenceUnavailableError(`cluster: candidate ${id} is not JSON`);
    }
  }

  async take(bucket: string, rate: Rate): Promise<boolean> {
    if (!(rate.perSecond > 0) || !(rate.burst >= 1)) throw new RangeError('rate limit needs perSecond > 0 and burst >= 1');
    const link = this.#link;
    // Known down: answer locally at once instead of waiting for a timeout on every call.
    if (!link.down) {
      try {
        const ok = await link.script('take', 'dcdnTake', bucket, 1000 / rate.perSecond, rate.burst);
        if (this.#fallback) {
          this.#fallback = false;
          this.#local.clear();
          link.log('info', 'cluster: rate limits are cluster-wide again', { node: link.nodeId });
        }
        return ok === 1;
      } catch {
        // fall through to the local bucket
      }
    }
    if (!this.#fallback) {
      this.#fallback = true;
      link.log('warn', 'cluster: Redis unreachable; rate limits fall back to this node\'s own buckets (fail-open per node)', { node: link.nodeId });
    }
    let local = this.#local.get(bucket);
    if (!local) {
      if (this.#local.size >= MAX_LOCAL_BUCKETS) this.#local.delete(this.#local.keys().next().value!);
      local = new TokenBucket(rate);
      this.#local.set(bucket, local);
    }
    return local.take();
  }
}
