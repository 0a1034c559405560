/**
 * The cluster section's table (bench/cluster.ts): cross-node next to single-node figures, with
 * their ratios, which the summary also carries.
 */
import type { ClusterFigures } from './cluster.ts';
import { ratio } from './stats.ts';

/** The summary's cluster ratios (cross-node or forwarded over local or direct); null when not measured. */
export function clusterRatios(c: ClusterFigures | undefined): { clusterJoinP50OverLocal: number | null; clusterRelayP50OverLocal: number | null; forwardedRpsOverDirect: number | null } {
  return {
    clusterJoinP50OverLocal: ratio(c?.joinVisible.cross.p50, c?.joinVisible.local.p50),
    clusterRelayP50OverLocal: ratio(c?.relay.cross.p50, c?.relay.local.p50),
    forwardedRpsOverDirect: ratio(c?.http.forwarded.rps, c?.http.direct.rps),
  };
}

export function renderClusterTable(c: ClusterFigures, reps: number, connections: number): string {
  if (c.skipped) return `Cluster: skipped (${c.skipped})`;
  const n = (v: number | null | undefined, digits = 2) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '-');
  const r = clusterRatios(c);
  const lat = (what: string, x: { local: { p50: number | null; p99: number | null; n: number }; cross: { p50: number | null; p99: number | null } }, q: number | null) =>
    `  ${what.padEnd(34)} ${n(x.local.p50).padStart(7)} ${n(x.local.p99).padStart(7)}   ${n(x.cross.p50).padStart(7)} ${n(x.cross.p99).padStart(7)}   ${n(q).padStart(5)}   n=${x.local.n}`;
  const h = c.http;
  const lines = [
    `Cluster: two signaling nodes on one Redis, two ingresses (K = 1); ms; req/s medians of ${reps}, ${connections} connections`,
    `  ${''.padEnd(34)} ${'local p50'.padStart(7)} ${'p99'.padStart(7)}   ${'cross p50'.padStart(7)} ${'p99'.padStart(7)}   ratio`,
    lat('hello → join at an ingress', c.joinVisible, r.clusterJoinP50OverLocal),
    lat('signal ingress → host (one way)', c.relay, r.clusterRelayP50OverLocal),
    `  ${'hello world through an ingress'.padEnd(34)} ${'direct'.padStart(7)} ${'p50'.padStart(7)}   ${'fwd once'.padStart(7)} ${'p50'.padStart(7)}`,
    `  ${'req/s, latency p50 ms'.padEnd(34)} ${n(h.direct.rps, 0).padStart(7)} ${n(h.direct.p50Ms).padStart(7)}   ${n(h.forwarded.rps, 0).padStart(7)} ${n(h.forwarded.p50Ms).padStart(7)}   ${n(r.forwardedRpsOverDirect).padStart(5)}`,
  ];
  if (h.direct.failures + h.forwarded.failures > 0) lines.push(`  ${h.direct.failures + h.forwarded.failures} requests FAILED`);
  const co = c.coordination;
  if (co) {
    lines.push(
      `  coordination (bench/cluster-presence.ts, Redis direct): register p50 ${n(co.register.p50)} p99 ${n(co.register.p99)}; join→visible p50 ${n(co.joinVisible.p50)} p99 ${n(co.joinVisible.p99)}; ` +
        `bus round trip p50 ${n(co.relayRoundTrip.p50)} p99 ${n(co.relayRoundTrip.p99)}, ${co.relayPerSecond}/s at 64 in flight`,
      `  renew of ${co.config.hosts} entries ${n(co.renewMs, 1)} ms; Redis memory per host ${co.bytesPerHost.entryOnly} B (${co.bytesPerHost.withEvents} B with its event)` +
        (co.nodeLostMs ? `; a killed node's peers gone after ${co.nodeLostMs.killed} ms, a closed one's after ${co.nodeLostMs.closed} ms` : ''),
    );
  }
  return lines.join('\n');
}
