/**
 * Log lines a peer can cause, rate-limited per peer: a host (or a signaling peer) that makes
 * the ingress warn on every frame or signal it sends would otherwise write the log full (eight
 * volunteers relaying junk signals at 45/s wrote 2,801 lines in 20 s). The first line of each
 * kind (its message) from each peer (`host` or `from` field) in an interval is written; the rest
 * are counted, and the count goes out with the next line of that kind (`suppressed: N`) or, if
 * none comes, in a summary line at the end of the interval. Errors, and lines naming no peer,
 * always pass.
 */

type Level = 'info' | 'warn' | 'error';
export type Log = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

/** Default {@link peerLog} interval. */
export const PEER_LOG_INTERVAL_MS = 10_000;
/** Most (peer, message) pairs tracked at once; past it the oldest are forgotten. */
const MAX_KEYS = 10_000;

interface Entry {
  start: number;
  suppressed: number;
  level: Level;
  msg: string;
  peer: unknown;
}

/**
 * Wraps `out`. `intervalMs` 0 turns limiting off. Call `stop()` when done (it flushes the
 * counts and stops the summary timer).
 */
export function peerLog(out: Log, intervalMs = PEER_LOG_INTERVAL_MS, now: () => number = Date.now): Log & { stop(): void } {
  const entries = new Map<string, Entry>();
  let timer: ReturnType<typeof setInterval> | null = null;
  const summarise = (force: boolean) => {
    const t = now();
    for (const [key, e] of entries) {
      if (!force && t - e.start < intervalMs) continue;
      if (e.suppressed > 0) out(e.level, `${e.msg} (repeated)`, { peer: e.peer, suppressed: e.suppressed, intervalMs });
      entries.delete(key);
    }
    if (entries.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
  const log = ((level, msg, fields) => {
    const peer = fields?.['host'] ?? fields?.['from'];
    if (intervalMs <= 0 || level === 'error' || peer === undefined) return out(level, msg, fields);
    const key = `${String(peer)}\u0000${msg}`;
    const t = now();
    const e = entries.get(key);
    if (e && t - e.start < intervalMs) {
      e.suppressed++;
      return;
    }
    if (e) entries.delete(key);
    if (entries.size >= MAX_KEYS) entries.delete(entries.keys().next().value!);
    entries.set(key, { start: t, suppressed: 0, level, msg, peer });
    out(level, msg, e?.suppressed ? { ...fields, suppressed: e.suppressed } : fields);
    if (timer === null) {
      timer = setInterval(() => summarise(false), intervalMs);
      (timer as { unref?: () => void }).unref?.();
    }
  }) as Log & { stop(): void };
  log.stop = () => summarise(true);
  return log;
}
