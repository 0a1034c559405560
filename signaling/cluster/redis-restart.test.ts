import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { entry, watch } from '../../test/presence-suite.ts';
import { connectRedisCluster } from './redis.ts';
import { PresenceUnavailableError, type ClusterParts } from './types.ts';

// Its own redis-server on a fixed socket, so it can be killed and started again empty where the
// nodes' connections reconnect (tools/redis.ts gives each start a new directory).
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
const dir = mkdtempSync(join(tmpdir(), 'dcdn-redis-restart-'));
const socket = join(dir, 'redis.sock');
let child: ChildProcess | null = null;
let parts: ClusterParts | null = null;

async function start(): Promise<void> {
  child = spawn(REDIS_SERVER, ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  // Ready when it answers PING; a fresh client per try (ioredis would queue for us otherwise).
  for (;;) {
    const probe = new Redis({ path: socket, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    const ok = await probe.connect().then(() => probe.ping()).then(() => true, () => false);
    probe.disconnect();
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function kill(): Promise<void> {
  const c = child!;
  const exited = new Promise((resolve) => c.once('exit', resolve));
  c.kill('SIGKILL');
  await exited;
  child = null;
}

afterEach(async () => {
  await parts?.close();
  parts = null;
  if (child) await kill();
});

process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

describe('Redis killed and started again empty', () => {
  it('fails calls at once while it is gone, then resets the tail and reports the new generation', async () => {
    await start();
    const logs: string[] = [];
    parts = await connectRedisCluster({ url: `redis+unix://${socket}`, clusterName: 'main', nodeId: 'a', region: 'r', log: (_l, m) => logs.push(m), timings: { blockMs: 500 } });
    const p = parts.presence;
    const w = watch(p, (await p.snapshot()).cursor);
    const mine = entry('h:r', 'a');
    const { epoch } = await p.register(mine, {});
    await kill();
    await expect(p.register(entry('h:x', 'a'), {})).rejects.toBeInstanceOf(PresenceUnavailableError);
    await expect(parts.bus.send('a', { v: 1, t: 'drain', peer: 'x', draining: false })).rejects.toBeInstanceOf(PresenceUnavailableError);
    await w.reset();
    await start();
    // The node finds the new dataset on its next call: renew says every key is gone.
    let renewed: Awaited<ReturnType<typeof p.renew>> | null = null;
    // (Retried until the connection is back: ioredis reconnects on its own timer.)
    while (renewed === null) {
      renewed = await p.renew([{ key: 'h:r', epoch }], { cv: 0, peers: 1 }).catch(() => null);
      if (renewed === null) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(renewed).toEqual({ fenced: [], missing: [], genChanged: true });
    const again = await p.reclaim(mine);
    expect(again!.epoch).toBeGreaterThan(epoch);
    expect((await p.snapshot()).entries.map((e) => e.epoch)).toEqual([again!.epoch]);
    expect((await p.nodes()).map((n) => n.id)).toEqual(['a']);
    expect(logs.some((m) => /unreachable/.test(m))).toBe(true);
    expect(logs.some((m) => /dataset is new/.test(m))).toBe(true);
  });
});
