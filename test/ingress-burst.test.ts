/**
 * Thousands of concurrent requests (RELIABILITY 11): the ingress sheds only as configured
 * (503 INGRESS_HOSTS_BUSY with Retry-After once every host is at its limit), answers every
 * request one way or the other, keeps its event loop responsive, and holds no stream, socket or
 * memory once the burst is over. A Node host over the real WebSocket transport answers after a
 * short delay; real HTTP on port 0. Bounded: 2000 requests, loopback only.
 */
import { Agent, request as httpRequest } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stream } from '../protocol/index.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

const BURST = 2000;
const PER_HOST = 64;
let net: NodeNetwork;

beforeAll(async () => {
  // The head timeout is not what this tests: on a loaded 2-core machine 2000 requests queued
  // behind 128 slots can wait longer than 10 s, which is a machine's speed, not shedding.
  net = await startNodeNetwork({ pool: { maxInFlightPerHost: PER_HOST }, proxy: { headTimeoutMs: 60_000 } });
});
afterAll(() => net.close());

/** Answers each request 20 ms later with a small body. */
const delayed = (s: Stream) => {
  s.onreset = () => {};
  s.ondata = (c) => s.consume(c.byteLength);
  setTimeout(() => {
    s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
    void s.write(new TextEncoder().encode('ok')).then(() => s.end());
  }, 20);
};

const openFds = () => readdirSync('/proc/self/fd').length;

describe('a burst of concurrent requests', () => {
  it.skipIf(process.platform !== 'linux')(`answers all ${BURST} with 200 or a coded 503, ends with nothing held and serves at once`, async () => {
    await net.addHost('burst-a', delayed);
    await net.addHost('burst-b', delayed);
    const fdsBefore = openFds();
    const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const outcomes = await Promise.all(
      Array.from({ length: BURST }, (_, i) =>
        new Promise<string>((resolve) => {
          const req = httpRequest(`${net.ingress.url}/r${i}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) resolve('200');
              else if (res.statusCode === 503 && res.headers['retry-after'] && res.headers['dcdn-error'] === 'INGRESS_HOSTS_BUSY') resolve('503 busy');
              else resolve(`${res.statusCode} ${String(res.headers['dcdn-error'])}`);
            });
          });
          req.setTimeout(90_000, () => req.destroy(new Error('no answer in 90 s')));
          req.on('error', (e) => resolve(`error ${e.message}`));
          req.end();
        }),
      ),
    );
    lag.disable();
    agent.destroy();
    const counts: Record<string, number> = {};
    for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
    const lagP99Ms = lag.percentile(99) / 1e6;
    console.log(`[burst] ${JSON.stringify(counts)}; event-loop delay p99 ${lagP99Ms.toFixed(0)} ms (test process: client and ingress)`);
    // Every request got an answer, and nothing but the configured shedding refused one.
    expect(Object.keys(counts).every((k) => k === '200' || k === '503 busy')).toBe(true);
    expect(counts['200']).toBeGreaterThanOrEqual(2 * PER_HOST);
    // The event-loop delay is printed, not asserted: it measures this machine as much as the
    // ingress (tests never assert on timings). The figure with a target is `dcdn bench`'s.
    // Nothing held afterwards: no request in flight, no stream open, the sockets closed.
    await until(() => net.ingress.pool.list().every((h) => h.inFlight === 0), 10_000);
    await until(() => openFds() <= fdsBefore + 5, 10_000);
    // And it serves normally straight away.
    const after = await fetch(`${net.ingress.url}/after`);
    expect(after.status).toBe(200);
  }, 180_000);
});
