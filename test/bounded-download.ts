/**
 * Proves that a long `/bytes` download through an in-process ingress is bounded in memory, in
 * seconds rather than minutes. Moving a gigabyte proves nothing a few dozen megabytes do not,
 * if the client also stops reading now and then: a queue without backpressure then fills at
 * the full speed of the host while nothing drains it, and the test sees it at once, whereas a
 * fast reader can hide such a queue for any length of transfer.
 *
 * At every `pauseEvery` bytes the client stops reading and watches the ingress's own copy of the
 * response (the server-side `ServerResponse`, found on the ingress's HTTP server): with
 * backpressure its queue stops growing within about one stream window; without, it grows until
 * it passes `maxQueuedBytes` and the download fails with what it saw. Each pause ends when the
 * queue has held still for a while (a sign, not a measurement: a slow machine can only end a
 * pause early, never fail a bounded ingress). Live memory (after a full GC) is sampled at each
 * pause, so a leak per chunk anywhere in the process shows too.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Ingress } from '../ingress/index.ts';
import { liveBytes } from './live-memory.ts';

const MiB = 1024 * 1024;

/** What one bounded download saw. */
export interface BoundedDownload {
  received: number;
  /** Offset of the first byte that broke the `/bytes` pattern, or -1. */
  mismatch: number;
  /** The ingress's queued response bytes at its worst, over all pauses. */
  maxQueued: number;
  /** Live memory (heap + external, after GC) at each pause, in order. */
  samples: number[];
  /** Growth of live memory from the first sample to the largest. */
  growth: number;
  /** The `dcdn-transport` response header. */
  transport: string | undefined;
  seconds: number;
}

/** How to run a bounded download. */
export interface BoundedDownloadOptions {
  /** Bytes to move. */
  bytes: number;
  /** Stop reading every this many bytes. Default 16 MiB. */
  pauseEvery?: number;
  /** The ingress's queue toward this client may not exceed this. Default 8 MiB (windows are 256 KiB). */
  maxQueuedBytes?: number;
  /** A pause ends once the ingress's queue has not changed for this many polls 20 ms apart. Default 10. */
  stillPolls?: number;
}

/**
 * Downloads `GET /bytes?n=<bytes>` from `ingress`, checking every 4099th byte of the pattern,
 * pausing and sampling as described above. Rejects if the ingress's queue passes its bound.
 *
 * @example
 * const d = await boundedDownload(ingress, { bytes: 96 * MiB });
 * expect(d.growth).toBeLessThan(16 * MiB);
 */
export async function boundedDownload(ingress: Ingress, options: BoundedDownloadOptions): Promise<BoundedDownload> {
  const n = options.bytes;
  const pauseEvery = options.pauseEvery ?? 16 * MiB;
  const maxQueued = options.maxQueuedBytes ?? 8 * MiB;
  const stillPolls = options.stillPolls ?? 10;
  const path = `/bytes?n=${n}&probe=${Math.random().toString(36).slice(2)}`;

  // The ingress's side of this one response, to see what it queues while the client is paused.
  const seen: { res: ServerResponse | null } = { res: null };
  const server = ingress.app.server;
  const spot = (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === path) seen.res = res;
  };
  server.on('request', spot);

  const started = performance.now();
  const samples: number[] = [];
  let received = 0;
  let mismatch = -1;
  let worst = 0;
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      request(`${ingress.url}${path}`, resolve).on('error', reject).end();
    });
    const transport = res.headers['dcdn-transport'] as string | undefined;
    let nextPause = pauseEvery;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      for (let i = 0; i < chunk.length && mismatch < 0; i += 4099) if (chunk[i] !== ((received + i) & 0xff)) mismatch = received + i;
      received += chunk.length;
      if (received >= nextPause && received < n) {
        nextPause += pauseEvery;
        // The for-await holds the next read back: nothing is taken from the socket meanwhile.
        worst = Math.max(worst, await waitForQueueToSettle(() => seen.res?.writableLength ?? 0, maxQueued, stillPolls));
        samples.push(liveBytes());
      }
    }
    const growth = samples.length ? Math.max(...samples) - samples[0]! : 0;
    return { received, mismatch, maxQueued: worst, samples, growth, transport, seconds: (performance.now() - started) / 1000 };
  } finally {
    server.off('request', spot);
  }
}

/**
 * Polls the ingress's queue until the socket is full (the queue is not empty: the kernel's
 * buffers took all they would) and the queue then holds still; throws once it passes `limit`.
 * Returns its peak.
 */
async function waitForQueueToSettle(queued: () => number, limit: number, stillPolls: number): Promise<number> {
  let last = -1;
  let still = 0;
  let peak = 0;
  // Bounded so a queue that creeps but never passes the limit cannot hang the test.
  for (let polls = 0; polls < 1500 && still < stillPolls; polls++) {
    const now = queued();
    peak = Math.max(peak, now);
    if (now > limit) throw new Error(`the ingress queued ${(now / MiB).toFixed(1)} MiB for a client that stopped reading (limit ${(limit / MiB).toFixed(0)} MiB): no backpressure`);
    still = now > 0 && now === last ? still + 1 : 0;
    last = now;
    await new Promise((r) => setTimeout(r, 20));
  }
  return peak;
}

/** Formats a download's figures for the test log. */
export function describeDownload(d: BoundedDownload): string {
  return `${(d.received / MiB).toFixed(0)} MiB in ${d.seconds.toFixed(1)} s, ingress queue ≤ ${(d.maxQueued / 1024).toFixed(0)} KiB, live memory ${d.samples.map((b) => (b / MiB).toFixed(0)).join(', ')} MiB`;
}
