/**
 * T9 (SCALE-OUT §4.3): a region partition. r1 holds Redis, Postgres, s1, i1, i2 and 10 hosts; r2
 * holds s2, i3 and 10 hosts, and reaches r1's Redis and Postgres through delaying proxies in r2
 * (25 ms each way). Host↔ingress sessions and forwards cross the veth directly. The veth is cut
 * silently for 30 s under load at i1 and i3: each side serves its own hosts, r2's KV fails fast
 * with its code, r1 drops r2's peers; after the heal r2's peers come back and a deploy made during
 * the cut reaches r2's hosts within 12 s.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../signaling/index.ts';
import { startPostgres, type PostgresServer } from '../../tools/postgres.ts';
import { startRedisTcp, type RedisTcpServer } from '../../tools/redis.ts';
import { BIN } from '../cli.ts';
import { assertClusterHealth, explainStartFailure, ingressHealth, signalHealth, waitFor, type SignalHealth } from './cluster-api.ts';
import { describeLoad, startLoad, type LoadRecord } from './load.ts';
import { createRegions, netnsSkipReason, type Regions } from './netns.ts';
import { NsReach } from './ns-gateway.ts';
import { Procs, type Proc } from './procs.ts';
import { CLUSTER_START_MS, hold } from './scenario.ts';
import { CLUSTER_NAME, SECRET } from './topology.ts';

const run = promisify(execFile);
const WAN_DELAY_MS = 25;
const PARTITION_AT_MS = 5000;
const PARTITION_MS = 30_000;
const DEPLOY_AT_MS = 10_000;
const R1_DROPS_R2_MS = 8000;
const R2_BACK_MS = 10_000;
const DEPLOY_AFTER_HEAL_MS = 12_000;
const KV_FAIL_MS = 5500;
const PORTS = { redis: 6379, pg: 5432, s1: 8701, s2: 8702, i1: 8081, i2: 8082, i3: 8083, peer1: 9081, peer2: 9082, peer3: 9083 };

const skip = netnsSkipReason();
const enabled = skip === null;
if (skip) console.warn(`[T9] ${skip}`);

(enabled ? describe : describe.skip)('T9: a region partition', () => {
  const procs = new Procs();
  const operator = mintToken(SECRET, { role: 'operator', sub: 'cluster-suite', ttlSeconds: 3600 });
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-t9-'));
  let regions: Regions;
  let reach1: NsReach;
  let reach2: NsReach;
  let redis: RedisTcpServer | null = null;
  let pg: PostgresServer | null = null;
  let hostsR1: Proc;
  let hostsR2: Proc;
  let R1 = '';
  let R2 = '';

  const signalArgs = (id: string, host: string, port: number, region: string, redisUrl: string, pgUrl: string) => [
    'signal', '--port', String(port), '--host', host, '--secret', SECRET, '--cluster', redisUrl, '--control-store', pgUrl,
    '--cluster-name', CLUSTER_NAME, '--node-id', id, '--region', region, '--attach', '2',
  ];
  const ingressArgs = (name: string, host: string, port: number, peerPort: number, region: string, signal: string, kv: string) => [
    'ingress', '--signal', signal, '--port', String(port), '--host', host, '--name', name, '--region', region, '--secret', SECRET,
    '--transport', 'websocket', '--peer-listen', `${host}:${peerPort}`, '--peer-url', `http://${host}:${peerPort}`, '--kv-store', kv,
  ];
  /** `dcdn ARGS` run inside r1, as an operator there would. */
  const dcdnInR1 = async (...args: string[]) => {
    try {
      const r = await run('ip', ['netns', 'exec', regions.r1.ns, process.execPath, BIN, ...args, '--signal', `http://${R1}:${PORTS.s1}`, '--token', operator], {
        env: { PATH: process.env.PATH, HOME: dir, DCDN_HOME: dir },
        timeout: 60_000,
      });
      return { code: 0, out: r.stdout + r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout + e.stderr };
    }
  };
  const s1Health = () => signalHealth(`http://${R1}:${PORTS.s1}`, operator, reach1);
  const hostStatus = async (p: Proc): Promise<Record<string, { sessions: number; versions: Record<string, number> }>> => {
    const from = p.logLength;
    p.send('status');
    const m = await p.waitForLog(/status (\{.*\})\n/, 5000, from);
    return JSON.parse(m[1]!) as Record<string, { sessions: number; versions: Record<string, number> }>;
  };

  beforeAll(async () => {
    regions = createRegions();
    R1 = regions.r1.address;
    R2 = regions.r2.address;
    const gw1 = procs.helper('gw-r1', 'ns-gateway.ts', [join(dir, 'r1.sock')], { prefix: regions.r1.prefix });
    const gw2 = procs.helper('gw-r2', 'ns-gateway.ts', [join(dir, 'r2.sock')], { prefix: regions.r2.prefix });
    await Promise.all([gw1.waitForLog(/listening/), gw2.waitForLog(/listening/)]);
    reach1 = new NsReach(join(dir, 'r1.sock'));
    reach2 = new NsReach(join(dir, 'r2.sock'));
    [redis, pg] = await Promise.all([
      startRedisTcp({ host: R1, port: PORTS.redis, prefix: regions.r1.prefix }),
      startPostgres({ host: R1, port: PORTS.pg, prefix: regions.r1.prefix }),
    ]);
    await pg.createDatabase('dcdn');
    // The WAN: r2 reaches r1's Redis and Postgres through 25 ms proxies on r2's loopback.
    const wanRedis = procs.helper('wan-redis', 'delay-proxy.ts', [`127.0.0.1:${PORTS.redis}`, `${R1}:${PORTS.redis}`, String(WAN_DELAY_MS)], { prefix: regions.r2.prefix });
    const wanPg = procs.helper('wan-pg', 'delay-proxy.ts', [`127.0.0.1:${PORTS.pg}`, `${R1}:${PORTS.pg}`, String(WAN_DELAY_MS)], { prefix: regions.r2.prefix });
    await Promise.all([wanRedis.waitForLog(/listening/), wanPg.waitForLog(/listening/)]);
    const s1 = procs.dcdn('s1', signalArgs('s1', R1, PORTS.s1, 'r1', redis.url, `postgres://postgres@${R1}:${PORTS.pg}/dcdn`), { prefix: regions.r1.prefix });
    const s2 = procs.dcdn('s2', signalArgs('s2', R2, PORTS.s2, 'r2', `redis://127.0.0.1:${PORTS.redis}`, `postgres://postgres@127.0.0.1:${PORTS.pg}/dcdn`), { prefix: regions.r2.prefix });
    try {
      await Promise.all([
        s1.waitReady(async () => (await s1Health()) !== null, 'ready'),
        s2.waitReady(async () => (await signalHealth(`http://${R2}:${PORTS.s2}`, operator, reach2)) !== null, 'ready'),
      ]);
      const ingresses = [
        procs.dcdn('i1', ingressArgs('i1', R1, PORTS.i1, PORTS.peer1, 'r1', `http://${R1}:${PORTS.s1}`, redis.url), { prefix: regions.r1.prefix }),
        procs.dcdn('i2', ingressArgs('i2', R1, PORTS.i2, PORTS.peer2, 'r1', `http://${R1}:${PORTS.s1}`, redis.url), { prefix: regions.r1.prefix }),
        procs.dcdn('i3', ingressArgs('i3', R2, PORTS.i3, PORTS.peer3, 'r2', `http://${R2}:${PORTS.s2}`, `redis://127.0.0.1:${PORTS.redis}`), { prefix: regions.r2.prefix }),
      ];
      const urls = [`http://${R1}:${PORTS.i1}`, `http://${R1}:${PORTS.i2}`, `http://${R2}:${PORTS.i3}`];
      const reaches = [reach1, reach1, reach2];
      await Promise.all(ingresses.map((p, i) => p.waitReady(async () => (await ingressHealth(urls[i]!, reaches[i]))?.signaling === true, 'connected to signaling')));
    } catch (err) {
      console.error(procs.dumpLogs());
      throw explainStartFailure(err);
    }
    assertClusterHealth(await s1Health(), 's1:');
    const hostsOf = (prefix: string, url: string) => JSON.stringify({ secret: SECRET, hosts: Array.from({ length: 10 }, (_, i) => ({ name: `${prefix}-${i}`, signalUrl: url })) });
    hostsR1 = procs.helper('hosts-r1', 'host-process.ts', [hostsOf('r1', `ws://${R1}:${PORTS.s1}/v1/signal`)], { prefix: regions.r1.prefix });
    hostsR2 = procs.helper('hosts-r2', 'host-process.ts', [hostsOf('r2', `ws://${R2}:${PORTS.s2}/v1/signal`)], { prefix: regions.r2.prefix });
    await Promise.all([hostsR1.waitForLog(/started 10/), hostsR2.waitForLog(/started 10/)]);
    const app = join(dir, 'app.ts');
    writeFileSync(app, `export default { fetch() { return new Response('t9'); } };\n`);
    const deployed = await dcdnInR1('deploy', app, '--name', 'echo', '--kv', 'CACHE', '--skip-check', '--rollout-timeout', '0');
    if (deployed.code !== 0) throw new Error(`deploy failed: ${deployed.out}`);
  }, CLUSTER_START_MS);

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(procs.dumpLogs());
  });

  afterAll(async () => {
    regions?.heal();
    reach1?.destroy();
    reach2?.destroy();
    await procs.killAll();
    await redis?.stop().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    regions?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('each side serves its own hosts through a 30 s cut, and r2 catches up after the heal', async () => {
    const r2Peers = (h: SignalHealth | null) => (h?.peers ?? []).filter((p) => p.node === 's2');
    await waitFor(async () => ((await s1Health())?.peers.filter((p) => p.role === 'host').length === 20 ? true : null), 20_000, () => 's1 does not see all 20 hosts of both regions');
    const i1 = startLoad({ urls: [`http://${R1}:${PORTS.i1}/@echo/t9`], ratePerSecond: 50, durationMs: PARTITION_AT_MS + PARTITION_MS + 10_000, reach: reach1 });
    const i3 = startLoad({ urls: [`http://${R2}:${PORTS.i3}/@echo/t9`], ratePerSecond: 50, durationMs: PARTITION_AT_MS + PARTITION_MS + 10_000, reach: reach2 });
    const kvOk = (r: LoadRecord) => r.status === 200 || r.status === 404;
    const kv = startLoad({ urls: [`http://${R2}:${PORTS.i3}/@echo/kv/CACHE/t9`], ratePerSecond: 5, durationMs: PARTITION_AT_MS + PARTITION_MS + 10_000, reach: reach2, ok: kvOk });
    await hold(PARTITION_AT_MS);
    regions.partition();
    const cutAt = Date.now();
    let deployedVersion = 0;
    try {
      await waitFor(async () => (r2Peers(await s1Health()).length === 0 ? true : null), R1_DROPS_R2_MS, () => 's1 still lists r2\'s peers after the cut (janitor drops a lost node, deliverable 1)', 250);
      await hold(Math.max(0, DEPLOY_AT_MS - (Date.now() - cutAt)));
      const deployed = await dcdnInR1('deploy', join(dir, 'app.ts'), '--name', 'echo', '--kv', 'CACHE', '--skip-check', '--rollout-timeout', '0');
      expect(deployed.code, deployed.out).toBe(0);
      deployedVersion = Math.max(...Object.values(await hostStatus(hostsR1)).map((h) => h.versions.echo ?? 0));
      await hold(Math.max(0, PARTITION_MS - (Date.now() - cutAt)));
    } finally {
      regions.heal();
    }
    await waitFor(async () => (r2Peers(await s1Health()).filter((p) => p.role === 'host').length === 10 ? true : null), R2_BACK_MS, () => 'r2\'s hosts are not back in s1\'s view after the heal (reclaim and resync, deliverable 1)', 250);
    await waitFor(
      async () => (Object.values(await hostStatus(hostsR2)).every((h) => (h.versions.echo ?? 0) >= deployedVersion) ? true : null),
      DEPLOY_AFTER_HEAL_MS,
      () => `the deploy made during the cut (v${deployedVersion}) did not reach r2's hosts within 12 s of the heal (control version read on heal, deliverable 2)`,
      500,
    );
    const [a, b, k] = await Promise.all([i1.done, i3.done, kv.done]);
    expect(a.failed, `i1: ${describeLoad(a)}`).toBe(0);
    expect(b.failed, `i3: ${describeLoad(b)}`).toBe(0);
    for (const r of kv.records.filter((x) => !kvOk(x))) {
      expect({ status: r.status, error: r.error }).toEqual({ status: 503, error: 'KV_STORE_UNAVAILABLE' });
      expect(r.ms).toBeLessThanOrEqual(KV_FAIL_MS);
    }
    expect(k.total).toBeGreaterThan(0);
    // Every live host has exactly one entry.
    const names = (await s1Health())!.peers.filter((p) => p.role === 'host').map((p) => String(p.info?.name));
    expect(names).toHaveLength(20);
    expect(new Set(names).size).toBe(20);
  });
});
