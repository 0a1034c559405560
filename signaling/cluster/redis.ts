/**
 * A signaling node's cluster parts on Redis: presence, bus and ephemeral store sharing one
 * command connection and one blocking reader (redis-link.ts, stream-reader.ts).
 *
 * @example
 * ```ts
 * const parts = await connectRedisCluster({ url: 'rediss://dcdn:pw@redis.internal:6380', clusterName: 'main', nodeId: 's1', region: 'eu' });
 * ```
 */
import { RedisBus } from './redis-bus.ts';
import { RedisEphemeral } from './redis-ephemeral.ts';
import { RedisLink, type RedisClusterTimings } from './redis-link.ts';
import { RedisPresence } from './redis-presence.ts';
import { StreamReader } from './stream-reader.ts';
import type { ClusterLog, ClusterParts } from './types.ts';

export interface RedisClusterOptions {
  /** `redis://`, `rediss://` (TLS) or `redis+unix:///path`; user and password in the URL for an ACL user. */
  url: string;
  clusterName: string;
  nodeId: string;
  region: string;
  log?: ClusterLog;
  /** Where operators and tabs reach this node (NodeRecord.url). */
  advertiseUrl?: string;
  /** Leases, periods and timeouts; tests shorten them. */
  timings?: Partial<RedisClusterTimings>;
}

/** Connects, checks Redis's settings, adopts (or sets) the dataset generation and makes the node live. Rejects with PresenceUnavailableError when Redis cannot be reached. */
export async function connectRedisCluster(opts: RedisClusterOptions): Promise<ClusterParts> {
  const link = await RedisLink.open(opts);
  const reader = new StreamReader(link);
  await checkEvictionPolicy(link);
  const presence = new RedisPresence(link, reader, { region: opts.region, ...(opts.advertiseUrl && { advertiseUrl: opts.advertiseUrl }) });
  const bus = new RedisBus(link, reader);
  const ephemeral = new RedisEphemeral(link);
  const close = async () => {
    await bus.close();
    await presence.close();
    await reader.close();
    await link.close();
  };
  try {
    await presence.start();
  } catch (err) {
    await close();
    throw err;
  }
  return { nodeId: opts.nodeId, region: opts.region, kind: 'redis', presence, bus, ephemeral, close };
}

/** An evicted presence key is a silent leak or loss, so anything but `noeviction` is worth a warning. */
async function checkEvictionPolicy(link: RedisLink): Promise<void> {
  try {
    const reply = (await link.cmd.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1] ?? '';
    if (policy !== 'noeviction') {
      link.log('warn', 'cluster: Redis maxmemory-policy should be noeviction: an evicted presence key is a lost or leaked peer', { policy });
    }
  } catch (err) {
    // Managed Redis and ACL users often may not run CONFIG.
    link.log('warn', 'cluster: could not read Redis maxmemory-policy (make sure it is noeviction)', { err: (err as Error).message });
  }
}
