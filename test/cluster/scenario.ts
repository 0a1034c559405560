/**
 * What every scenario file shares: a cluster started once per file and torn down even
 * on failure (with every process's output printed when a test failed), and small probes.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe } from 'vitest';
import { WebSocket } from 'ws';
import { Cluster, type ClusterSpec } from './topology.ts';

/** How long starting a whole cluster may take (Redis, Postgres, 2 signaling, 3 ingresses, hosts, deploys). */
export const CLUSTER_START_MS = 120_000;

/** `describe` for one scenario on its own cluster. */
export function clusterScenario(title: string, spec: () => ClusterSpec, body: (cluster: () => Cluster) => void): void {
  describe(title, () => {
    let cluster: Cluster | null = null;
    beforeAll(async () => {
      cluster = new Cluster(spec());
      try {
        await cluster.start();
      } catch (err) {
        console.error(cluster.dumpLogs());
        throw err;
      }
    }, CLUSTER_START_MS);
    afterEach((ctx) => {
      if (ctx.task.result?.state === 'fail' && cluster) console.error(cluster.dumpLogs());
    });
    afterAll(async () => {
      await cluster?.close();
    }, 60_000);
    body(() => {
      if (!cluster) throw new Error('the cluster did not start');
      return cluster;
    });
  });
}

/** Sleeps (only where a scenario's script says "for N seconds": load windows, outages). */
export function hold(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `redis-cli -h HOST -p PORT ARGS…`, its trimmed output. */
export function redisCli(host: string, port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-h', host, '-p', String(port), '--raw', ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Keys matching `pattern` (SCAN, not KEYS, like an operator would). */
export function redisKeys(host: string, port: number, pattern: string): string[] {
  const out = spawnSync('redis-cli', ['-h', host, '-p', String(port), '--raw', '--scan', '--pattern', pattern], { encoding: 'utf8', timeout: 10_000 });
  return out.stdout.split('\n').filter(Boolean);
}

/**
 * Opens a signaling connection with `token` and says hello: `welcomed`, or `refused <status>` when
 * the upgrade was refused, or `error <code>` when the server sent an error and closed, or
 * `silent` when nothing happened within `ms`.
 */
export function tryHello(url: string, token: string, info: Record<string, unknown>, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    const u = new URL(url);
    u.searchParams.set('token', token);
    const ws = new WebSocket(u);
    let done = false;
    const finish = (v: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.terminate();
      resolve(v);
    };
    const timer = setTimeout(() => finish('silent'), ms);
    ws.on('unexpected-response', (_req, res) => finish(`refused ${res.statusCode}`));
    ws.on('error', (e) => finish(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', info })));
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { type: string; code?: string };
      if (m.type === 'welcome') finish('welcomed');
      if (m.type === 'error') finish(`error ${m.code}`);
    });
    ws.on('close', () => finish('closed'));
  });
}

/** The p-th percentile (0-100) of `values`. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
