/**
 * What is measured on one open channel between Node and a tab: small-message round trips and
 * bulk throughput each way, with Node's CPU time around each transfer.
 */
import { pack } from 'msgpackr';
import type { Channel } from '../protocol/index.ts';
import { mbPerSecond } from './stats.ts';
import type { TabControl } from './page-server.ts';

/**
 * A ~100-byte msgpack message shaped like a request head frame (`[type, stream, method, url,
 * headers, endStream]`, docs/protocol.md). Nothing decodes it: the page echoes bytes.
 */
export const SMALL_FRAME: Uint8Array = pack([1, 1, 'GET', 'http://127.0.0.1:8080/items?page=2', ['accept', 'text/plain', 'user-agent', 'dcdn-bench/1', 'x-req', '0123456789ab'], true]);

/** The second echo size measured: a 64 KiB chunk, sent as one message. */
export const LARGE_FRAME_BYTES = 65536;
export const LARGE_FRAME: Uint8Array = new Uint8Array(LARGE_FRAME_BYTES).map((_, i) => i & 0xff);

/** Sender pauses above this many queued bytes and resumes at LOW_WATER (as the e2e test does). */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

/** Sends `message` (SMALL_FRAME unless told) and waits for the tab's echo, `count` times after `warmup` unrecorded ones. */
export async function roundTrips(channel: Channel, tab: TabControl, id: string, count: number, warmup: number, message: Uint8Array = SMALL_FRAME): Promise<number[]> {
  await tab.request('echo', id);
  const samples: number[] = [];
  let arrived: () => void = () => {};
  channel.onmessage = () => arrived();
  for (let i = 0; i < warmup + count; i++) {
    const echoed = new Promise<void>((resolve) => (arrived = resolve));
    const t0 = performance.now();
    channel.send(message);
    await echoed;
    if (i >= warmup) samples.push(performance.now() - t0);
  }
  channel.onmessage = null;
  return samples;
}

export interface Transfer {
  mbps: number;
  /** Node CPU seconds (user + system, all threads) per MB moved. */
  cpuSecondsPerMb: number;
}

/** Node sends `total` bytes in `size`-byte messages; done when the tab reports it has them all. */
export async function nodeToTab(channel: Channel, tab: TabControl, id: string, size: number, total: number): Promise<Transfer> {
  await tab.request('sink', id, { total });
  const sunk = tab.next('sunk', id, 300_000);
  const message = new Uint8Array(size).map((_, i) => i & 0xff);
  channel.lowWaterMark = LOW_WATER;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let sent = 0; sent < total; sent += size) {
    if (channel.bufferedAmount > HIGH_WATER) await drained(channel);
    channel.send(total - sent >= size ? message : message.subarray(0, total - sent));
  }
  await sunk;
  return result(total, performance.now() - t0, process.cpuUsage(cpu0));
}

/** The tab sends `total` bytes in `size`-byte messages; done when Node has them all. */
export async function tabToNode(channel: Channel, tab: TabControl, id: string, size: number, total: number): Promise<Transfer> {
  let got = 0;
  const all = new Promise<void>((resolve) => {
    channel.onmessage = (data) => {
      got += data.byteLength;
      if (got >= total) resolve();
    };
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const queued = tab.request('source', id, { size, total }, 300_000);
  await all;
  const transfer = result(total, performance.now() - t0, process.cpuUsage(cpu0));
  channel.onmessage = null;
  await queued;
  return transfer;
}

/** Tab `from` sends to tab `to` over their own data channel: Chromium's ceiling. Timed in Node. */
export async function tabToTab(from: TabControl, to: TabControl, id: string, size: number, total: number): Promise<number> {
  await to.request('sink', id, { total });
  const sunk = to.next('sunk', id, 300_000);
  const t0 = performance.now();
  await from.request('source', id, { size, total }, 300_000);
  await sunk;
  return mbPerSecond(total, performance.now() - t0);
}

function result(bytes: number, ms: number, cpu: NodeJS.CpuUsage): Transfer {
  return { mbps: mbPerSecond(bytes, ms), cpuSecondsPerMb: (cpu.user + cpu.system) / 1e6 / (bytes / 1e6) };
}

function drained(channel: Channel): Promise<void> {
  return new Promise((resolve) => {
    channel.ondrain = () => {
      channel.ondrain = null;
      resolve();
    };
  });
}
