/**
 * The cluster flags of `dcdn signal` (docs/cluster.md): with `--cluster redis://HOST:PORT` this
 * signaling node is one of several sharing presence, relay and limits through that Redis.
 * Without it, signaling runs alone with in-memory parts and needs no service (`dcdn up` too).
 */
import { intFlag, UsageError, type FlagSpec } from './args.ts';
// Not the signaling index: `dcdn --help` prints these flags without loading the server.
import type { ClusterOptions } from '../signaling/index.ts';

/** Default of `--attach`: each host attaches to this many ingresses. */
export const ATTACH_DEFAULT = 2;

export const clusterFlags = {
  cluster: { type: 'string', help: 'coordination Redis of a signaling cluster, e.g. redis://10.0.0.2:6379 (default: none, this node runs alone)' },
  'cluster-name': { type: 'string', default: 'main', help: 'cluster name: the Redis key prefix dcdn:{NAME}: (several clusters may share one Redis)' },
  'node-id': { type: 'string', help: "this signaling node's id (default: HOSTNAME-PID-RAND, new per start)" },
  region: { type: 'string', default: 'default', help: "this node's region: hosts on it get it, and ingresses prefer hosts of their own" },
  attach: { type: 'string', default: String(ATTACH_DEFAULT), help: 'how many ingresses each host attaches to (1 to 8; fewer when fewer ingresses are live)' },
} satisfies FlagSpec;

/** Reads the cluster flags: `cluster` is undefined without `--cluster`. */
export function clusterOptionsFromFlags(v: Record<string, unknown>): { cluster?: ClusterOptions; attach: number } {
  const attach = intFlag(v.attach ?? ATTACH_DEFAULT, 'attach', 1);
  if (attach > 8) throw new UsageError(`--attach must be 1 to 8, got ${attach}`);
  const region = String(v.region ?? 'default');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(region)) throw new UsageError(`--region must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(region)}`);
  if (v.cluster === undefined) {
    for (const flag of ['node-id'] as const) if (v[flag] !== undefined) throw new UsageError(`--${flag} needs --cluster`);
    return { attach };
  }
  const url = String(v.cluster);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--cluster must be a URL such as redis://10.0.0.2:6379, got ${JSON.stringify(url)}`);
  }
  if (!['redis:', 'rediss:', 'redis+unix:'].includes(parsed.protocol)) throw new UsageError(`--cluster must be a redis://, rediss:// or redis+unix:// URL, got ${JSON.stringify(url)}`);
  const clusterName = String(v['cluster-name'] ?? 'main');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(clusterName)) throw new UsageError(`--cluster-name must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(clusterName)}`);
  const nodeId = v['node-id'] === undefined ? undefined : String(v['node-id']);
  if (nodeId !== undefined && !/^[A-Za-z0-9_.-]{1,128}$/.test(nodeId)) throw new UsageError(`--node-id must be 1 to 128 letters, digits, '.', '_' or '-', got ${JSON.stringify(nodeId)}`);
  return { cluster: { url, clusterName, region, ...(nodeId ? { nodeId } : {}) }, attach };
}
