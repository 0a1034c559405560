/**
 * Two network namespaces joined by one veth pair: the "two regions" of the cluster tests
 * (SCALE-OUT §4.2). `partition()` makes the link drop every packet silently (no RST, no ICMP),
 * the way a cut between regions looks to TCP; `heal()` lifts it.
 *
 * This kernel has no netem, and no iptables/nft binary is installed, so the silent drop is a token
 * bucket filter that admits nothing: `tc qdisc replace dev VETH root tbf rate 8bit burst 1600
 * limit 1` on both ends (verified: connects time out with no error). Needs root; without it the
 * tests that need it are skipped with a message ({@link netnsSkipReason}). CI runs as root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { userInfo } from 'node:os';

export const NS_R1 = 'dcdn-t-r1';
export const NS_R2 = 'dcdn-t-r2';
/** The veth ends: `VETH_R1` lives in r1 with {@link ADDR_R1}, `VETH_R2` in r2 with {@link ADDR_R2}. */
export const VETH_R1 = 'dcdn-t-v1';
export const VETH_R2 = 'dcdn-t-v2';
export const ADDR_R1 = '10.203.0.1';
export const ADDR_R2 = '10.203.0.2';
const PREFIX_LEN = 30;

/** Why namespace tests cannot run here, or null when they can. */
export function netnsSkipReason(): string | null {
  if (userInfo().uid !== 0) return 'network namespaces need root (CI runs as root): skipping the namespace tests';
  if (spawnSync('ip', ['-V']).error) return 'the `ip` command (iproute2) is not installed: skipping the namespace tests';
  if (spawnSync('tc', ['-V']).error) return 'the `tc` command (iproute2) is not installed: skipping the namespace tests';
  return null;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function inNs(ns: string, ...argv: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface Regions {
  /** `['ip', 'netns', 'exec', NS]`: put it before a command to run it in r1 / r2. */
  readonly r1: { ns: string; address: string; prefix: string[] };
  readonly r2: { ns: string; address: string; prefix: string[] };
  /** Silently drops every packet on the link, both ways. Idempotent. */
  partition(): void;
  /** Restores the link. Idempotent. */
  heal(): void;
  readonly partitioned: boolean;
  /** Deletes both namespaces (and so the veth pair). Idempotent; safe after a failure. */
  destroy(): void;
}

/** Deletes namespaces left by a crashed earlier run (a namespace outlives its processes' exit only if named). */
export function removeLeftoverNamespaces(): void {
  for (const ns of [NS_R1, NS_R2]) spawnSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  // A veth end left in the root namespace (setup crashed half-way) would block the next `ip link add`.
  spawnSync('ip', ['link', 'delete', VETH_R1], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'delete', VETH_R2], { stdio: 'ignore' });
}

/** Creates r1 and r2 with the veth between them, loopback up in each. Call {@link netnsSkipReason} first. */
export function createRegions(): Regions {
  removeLeftoverNamespaces();
  try {
    ip('netns', 'add', NS_R1);
    ip('netns', 'add', NS_R2);
    ip('link', 'add', VETH_R1, 'type', 'veth', 'peer', 'name', VETH_R2);
    ip('link', 'set', VETH_R1, 'netns', NS_R1);
    ip('link', 'set', VETH_R2, 'netns', NS_R2);
    for (const [ns, dev, addr] of [[NS_R1, VETH_R1, ADDR_R1], [NS_R2, VETH_R2, ADDR_R2]] as const) {
      inNs(ns, 'ip', 'addr', 'add', `${addr}/${PREFIX_LEN}`, 'dev', dev);
      inNs(ns, 'ip', 'link', 'set', dev, 'up');
      inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    removeLeftoverNamespaces();
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`creating the test namespaces failed: ${e.stderr?.toString() ?? e.message}`);
  }
  let partitioned = false;
  const ends = [[NS_R1, VETH_R1], [NS_R2, VETH_R2]] as const;
  return {
    r1: { ns: NS_R1, address: ADDR_R1, prefix: ['ip', 'netns', 'exec', NS_R1] },
    r2: { ns: NS_R2, address: ADDR_R2, prefix: ['ip', 'netns', 'exec', NS_R2] },
    partition() {
      for (const [ns, dev] of ends) inNs(ns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', '8bit', 'burst', '1600', 'limit', '1');
      partitioned = true;
    },
    heal() {
      for (const [ns, dev] of ends) spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root'], { stdio: 'ignore' });
      partitioned = false;
    },
    get partitioned() {
      return partitioned;
    },
    destroy: removeLeftoverNamespaces,
  };
}
