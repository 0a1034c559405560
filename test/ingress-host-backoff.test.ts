/**
 * Back-off for bad hosts survives reconnects (RELIABILITY 4 and 5): a host whose sessions keep
 * getting closed for undecodable bytes comes back each time with its record, sits out for a
 * growing penalty and reconnects after a growing delay, while a good host serves; and when the
 * bad host is the only one, it is still used (never every host out at once).
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import type { Session, Stream } from '../protocol/index.ts';
import type { NodeHost } from './node-host.ts';
import { startNodeNetwork, until as untilHolds, type NodeNetwork } from './node-network.ts';

const PENALTY_BASE_MS = 800;
let net: NodeNetwork;
let ingress: Ingress;
let hosts: NodeHost[];

beforeAll(async () => {
  net = await startNodeNetwork({
    proxy: { headTimeoutMs: 2000 },
    pool: { penaltyBaseMs: PENALTY_BASE_MS, penaltyMaxMs: 10_000, penaltyDecayMs: 60_000 },
    session: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 2000 },
    shutdownGraceMs: 500,
  });
  ({ ingress, hosts } = net);
});

afterAll(() => net.close());

const addHost = (name: string, onstream: (s: Stream) => void): NodeHost => net.startHost(name, onstream);
const until = (cond: () => boolean, ms = 10_000) => untilHolds(cond, ms, 5);

const answer = (body: string) => (s: Stream) => {
  s.onreset = () => {};
  s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
  void s.write(new TextEncoder().encode(body)).then(() => s.end());
};

function get(path: string): Promise<{ status: number; host: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${ingress.url}${path}`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, host: res.headers['dcdn-host'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a host that keeps sending undecodable bytes', () => {
  it('comes back with its record: penalties and reconnect delays grow, a good host serves meanwhile', async () => {
    addHost('steady', answer('steady'));
    const garbler = addHost('garbler', answer('garbler'));
    const id = 'node-garbler';
    await until(() => ingress.pool.get('node-steady') !== undefined && ingress.pool.get(id) !== undefined);

    // The pool's own decision for each fault, exact: timing the gap between our fault and the
    // penalty's end from outside would put this machine's speed into the figure.
    const penalties: number[] = [];
    const reportSessionFault = ingress.pool.reportSessionFault.bind(ingress.pool);
    ingress.pool.reportSessionFault = (faulty, now) => {
      const penalty = reportSessionFault(faulty, now);
      if (faulty === id) penalties.push(penalty);
      return penalty;
    };
    const levels: number[] = [];
    const gaps: number[] = [];
    let session: Session | undefined = ingress.pool.get(id)!.session;
    for (let round = 0; round < 3; round++) {
      // 0xc1 is never valid msgpack: the ingress closes the session with PROTO_DECODE.
      garbler.channel!.send(Uint8Array.from([0xc1, 0xc1, 0xc1]));
      const faultAt = Date.now();
      await until(() => ingress.pool.get(id)?.session !== session);
      const standing = ingress.pool.standing(id);
      levels.push(standing.level);
      // Back in the pool after the reconnect delay, with the penalty it left with.
      await until(() => ingress.pool.get(id) !== undefined);
      gaps.push(Date.now() - faultAt);
      const entry = ingress.pool.get(id)!;
      session = entry.session;
      expect(entry.penalisedUntil).toBe(standing.penalisedUntil);
      if (entry.penalisedUntil > Date.now() + 100) {
        // Out of rotation: the good host takes the requests.
        for (let i = 0; i < 3; i++) expect((await get(`/r${round}-${i}`)).host).toBe('steady');
      }
    }
    expect(levels).toEqual([1, 2, 3]);
    // base, 2x base, 4x base.
    expect(penalties).toEqual([PENALTY_BASE_MS, PENALTY_BASE_MS * 2, PENALTY_BASE_MS * 4]);
    // The reconnect back-off is not reset while the host has a record: 0.5 s, 1 s, 2 s (±25%
    // jitter), where a clean slate each time would give ~0.5 s every time. Lower bounds only:
    // a loaded machine can only lengthen a gap, never make a reset back-off look like growth
    // it would not have on a quiet one.
    for (const [i, gap] of gaps.entries()) expect(gap).toBeGreaterThanOrEqual(0.75 * 500 * 2 ** i);

    // Alone, the penalised host still serves: a penalised host beats no host.
    hosts.find((h) => h !== garbler)!.close();
    await until(() => ingress.pool.get('node-steady') === undefined);
    ingress.pool.reportSessionFault = reportSessionFault;
    ingress.pool.reportSessionFault(id); // 4x base more: penalised for certain while we ask
    expect(ingress.pool.get(id)!.penalisedUntil).toBeGreaterThan(Date.now() + 1000);
    const alone = await get('/alone');
    expect(alone).toEqual({ status: 200, host: 'garbler' });
  }, 30_000);
});
