/**
 * The tab-death scenario shared by the WebRTC backends' end-to-end tests: long streams on both
 * tabs, one tab closed mid-stream, and a request every 200 ms for the next 5 s.
 */
import { request as httpRequest } from 'node:http';
import type { Ingress } from '../ingress/index.ts';
import { until, type Network } from './network.ts';

export interface TabDeath {
  /** Each long stream: which tab served it and whether it ended cleanly. */
  results: Array<{ host: string | undefined; complete: boolean }>;
  /** The requests made during the 5 s after the kill. */
  probes: Array<{ status: number; host: string | null; at: number }>;
  /** When the dead tab left the pool, in ms after the kill (-1 if not within 5 s). */
  noticedMs: number;
}

export async function killTabMidStream(net: Network, ingress: Ingress, victimName: string, streamChunks: number): Promise<TabDeath> {
  const victim = net.tabs.find((t) => t.url().includes(`name=${victimName}`))!;
  const hostsBefore = ingress.pool.size;
  const streams = Array.from({ length: 6 }, () =>
    new Promise<{ host: string | undefined; complete: boolean }>((resolve) => {
      httpRequest(`${ingress.url}/stream?chunks=${streamChunks}&delay=100`, (res) => {
        const host = res.headers['dcdn-host'] as string | undefined;
        res.resume();
        res.on('end', () => resolve({ host, complete: true }));
        res.on('aborted', () => resolve({ host, complete: false }));
        res.on('error', () => resolve({ host, complete: false }));
      })
        .on('error', () => resolve({ host: undefined, complete: false }))
        .end();
    }),
  );
  await new Promise((r) => setTimeout(r, 500));
  const killedAt = Date.now();
  await victim.close();
  let noticedMs = -1;
  void until(() => ingress.pool.size === hostsBefore - 1, 5000).then(() => (noticedMs = Date.now() - killedAt), () => {});
  // Meanwhile, new requests keep succeeding: those that reach the dead tab before the ingress
  // notices are retried on the other one (GET is idempotent).
  const probes: TabDeath['probes'] = [];
  while (Date.now() - killedAt < 5000) {
    const res = await fetch(`${ingress.url}/`);
    await res.arrayBuffer();
    probes.push({ status: res.status, host: res.headers.get('dcdn-host'), at: Date.now() - killedAt });
    await new Promise((r) => setTimeout(r, 200));
  }
  return { results: await Promise.all(streams), probes, noticedMs };
}
