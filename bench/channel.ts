/**
 * Section 1, channel level: one bench tab, echo and sinks in the page, Node at the other end
 * over werift, node-datachannel and WebSocket; plus two tabs talking to each other over
 * Chromium's own data channel (the ceiling). Transports take turns within each repetition.
 */
import { launchBrowser, resolveBrowser, type LaunchedBrowser } from '../browser-host/launcher/index.ts';
import { offererFactory } from '../ingress/rtc-backend.ts';
import type { LinkCandidate } from '../ingress/rtc-peer.ts';
import type { Channel } from '../protocol/index.ts';
import { LARGE_FRAME, LARGE_FRAME_BYTES, nodeToTab, roundTrips, SMALL_FRAME, tabToNode, tabToTab, type Transfer } from './channel-measure.ts';
import { onCleanup } from './cleanup.ts';
import { startPageServer, type PageServer, type TabControl } from './page-server.ts';
import { progress } from './progress.ts';
import { latencySummary } from './stats.ts';

export const NODE_TRANSPORTS = ['werift', 'node-datachannel', 'websocket'] as const;
export type NodeTransport = (typeof NODE_TRANSPORTS)[number];

export interface ChannelConfig {
  reps: number;
  rttCount: number;
  rttWarmup: number;
  /** Round trips of a 64 KiB message (recorded, and unrecorded before them). */
  rtt64kCount: number;
  rtt64kWarmup: number;
  /** Bytes per bulk transfer. */
  bulkBytes: number;
  /** Message sizes for bulk transfers; a size above the negotiated maximum is skipped. */
  sizes: number[];
}

export interface TransportRuns {
  skipped?: string;
  maxMessageSize?: number;
  setupMs: number[];
  rtt: Array<ReturnType<typeof latencySummary>>;
  /** Round trips of a 64 KiB message, one summary per repetition (empty when the channel cannot carry it). */
  rtt64k: Array<ReturnType<typeof latencySummary>>;
  /** By message size: one entry per repetition and direction. */
  bulk: Record<string, { toTab: Transfer[]; toNode: Transfer[] }>;
}

export interface ChannelResults {
  config: ChannelConfig & { smallFrameBytes: number; largeFrameBytes: number };
  transports: Record<NodeTransport, TransportRuns>;
  /** Tab to tab over Chromium's data channel: setup, RTT and MB/s by message size, per repetition. */
  chromium: { setupMs: number[]; rtt: Array<ReturnType<typeof latencySummary>>; rtt64k: Array<ReturnType<typeof latencySummary>>; bulk: Record<string, number[]> };
}

export interface Connection {
  channel: Channel;
  setupMs: number;
  close(): Promise<void>;
}

export async function runChannelSection(config: ChannelConfig): Promise<ChannelResults> {
  const browserPath = resolveBrowser().path;
  const server = await startPageServer();
  const unregisterServer = onCleanup(() => server.close());
  progress('channel: launching Chromium with two bench tabs');
  const browser = await launchBrowser({ executablePath: browserPath, logger: { warn: () => {}, error: (f, m) => progress(`chromium: ${m} ${JSON.stringify(f)}`) } });
  const unregisterBrowser = onCleanup(() => browser.close());
  try {
    return await measure(config, server, browser);
  } finally {
    await browser.close();
    unregisterBrowser();
    await server.close();
    unregisterServer();
  }
}

async function measure(config: ChannelConfig, server: PageServer, browser: LaunchedBrowser): Promise<ChannelResults> {
  await browser.openTabs(server.pageUrl('a'), 1, { readyExpression: 'window.__benchReady === true', timeoutMs: 30_000 });
  await browser.openTabs(server.pageUrl('b'), 1, { readyExpression: 'window.__benchReady === true', timeoutMs: 30_000 });
  const [a, b] = await Promise.all([server.tab('a'), server.tab('b')]);
  // DevTools mirrors traffic while attached (WEBRTC-NOTES: -40%): nothing is measured before this.
  await browser.detach();

  const results: ChannelResults = {
    config: { ...config, smallFrameBytes: SMALL_FRAME.byteLength, largeFrameBytes: LARGE_FRAME_BYTES },
    transports: Object.fromEntries(NODE_TRANSPORTS.map((t) => [t, { setupMs: [], rtt: [], rtt64k: [], bulk: {} }])) as unknown as Record<NodeTransport, TransportRuns>,
    chromium: { setupMs: [], rtt: [], rtt64k: [], bulk: {} },
  };
  // Module loading is not connection setup: load both stacks before the first measurement.
  await import('../ingress/rtc-peer.ts');
  // node-datachannel is optional: when it is missing, its runs are reported as skipped later.
  await import('../ingress/ndc-peer.ts').catch(() => undefined);

  const order = [...NODE_TRANSPORTS, 'chromium'] as const;
  let seq = 0;
  for (let rep = 0; rep < config.reps; rep++) {
    // Rotate who goes first, so no transport always runs on the coldest or the busiest moment.
    const turn = order.map((_, i) => order[(i + rep) % order.length]!);
    for (const transport of turn) {
      const id = `${transport}-${++seq}`;
      if (transport === 'chromium') {
        await runCeiling(config, results, a, b, id, rep);
        continue;
      }
      const runs = results.transports[transport];
      if (runs.skipped) continue;
      let conn: Connection;
      try {
        conn = await connect(transport, server, a, id);
      } catch (err) {
        const message = (err as Error).message;
        if (transport === 'node-datachannel' && /not available|cannot find|no native|ERR_MODULE_NOT_FOUND/i.test(message)) {
          runs.skipped = message;
          progress(`channel: node-datachannel skipped: ${message}`);
          continue;
        }
        throw err;
      }
      try {
        await runTransport(config, runs, conn, a, id, transport, rep);
      } finally {
        await conn.close();
      }
    }
  }
  return results;
}

async function runTransport(config: ChannelConfig, runs: TransportRuns, conn: Connection, tab: TabControl, id: string, transport: string, rep: number): Promise<void> {
  runs.setupMs.push(conn.setupMs);
  runs.maxMessageSize = conn.channel.maxMessageSize;
  const rtt = latencySummary(await roundTrips(conn.channel, tab, id, config.rttCount, config.rttWarmup));
  runs.rtt.push(rtt);
  const line = [`setup ${conn.setupMs.toFixed(0)} ms`, `rtt p50 ${rtt.p50?.toFixed(3)} ms`];
  if (LARGE_FRAME_BYTES <= conn.channel.maxMessageSize) {
    const rtt64k = latencySummary(await roundTrips(conn.channel, tab, id, config.rtt64kCount, config.rtt64kWarmup, LARGE_FRAME));
    runs.rtt64k.push(rtt64k);
    line.push(`64 KiB rtt p50 ${rtt64k.p50?.toFixed(3)} ms`);
  }
  for (const size of config.sizes) {
    if (size > conn.channel.maxMessageSize) continue;
    const entry = (runs.bulk[size] ??= { toTab: [], toNode: [] });
    const toTab = await nodeToTab(conn.channel, tab, id, size, config.bulkBytes);
    const toNode = await tabToNode(conn.channel, tab, id, size, config.bulkBytes);
    entry.toTab.push(toTab);
    entry.toNode.push(toNode);
    line.push(`${size / 1024} KiB ${toTab.mbps.toFixed(1)}/${toNode.mbps.toFixed(1)} MB/s`);
  }
  progress(`channel rep ${rep + 1}/${config.reps} ${transport}: ${line.join(', ')}`);
}

async function runCeiling(config: ChannelConfig, results: ChannelResults, a: TabControl, b: TabControl, id: string, rep: number): Promise<void> {
  const t0 = performance.now();
  const relay = [a.on((e) => e.ev === 'candidate' && e.id === id && void b.request('candidate', id, { candidate: e.candidate }).catch(() => {})), b.on((e) => e.ev === 'candidate' && e.id === id && void a.request('candidate', id, { candidate: e.candidate }).catch(() => {}))];
  const opened = Promise.all([a.next('open', id, 20_000), b.next('open', id, 20_000)]);
  try {
    const offer = await a.request('p2pOffer', id);
    const answer = await b.request('answer', id, { sdp: offer.sdp });
    await a.request('p2pAccept', id, { sdp: answer.sdp });
    const [openA] = await opened;
    results.chromium.setupMs.push(performance.now() - t0);
    await a.request('echo', id);
    const { samples } = await b.request('pingpong', id, { size: SMALL_FRAME.byteLength, count: config.rttCount, warmup: config.rttWarmup }, 120_000);
    const rtt = latencySummary(samples as number[]);
    results.chromium.rtt.push(rtt);
    const line: string[] = [`rtt p50 ${rtt.p50?.toFixed(3)} ms`];
    if (LARGE_FRAME_BYTES <= Number(openA.maxMessageSize)) {
      const big = await b.request('pingpong', id, { size: LARGE_FRAME_BYTES, count: config.rtt64kCount, warmup: config.rtt64kWarmup }, 120_000);
      const rtt64k = latencySummary(big.samples as number[]);
      results.chromium.rtt64k.push(rtt64k);
      line.push(`64 KiB rtt p50 ${rtt64k.p50?.toFixed(3)} ms`);
    }
    for (const size of config.sizes) {
      if (size > Number(openA.maxMessageSize)) continue;
      const mbps = await tabToTab(a, b, id, size, config.bulkBytes);
      (results.chromium.bulk[size] ??= []).push(mbps);
      line.push(`${size / 1024} KiB ${mbps.toFixed(1)} MB/s`);
    }
    progress(`channel rep ${rep + 1}/${config.reps} chromium tab to tab: ${line.join(', ')}`);
  } finally {
    relay.forEach((off) => off());
    await Promise.all([a.request('close', id), b.request('close', id)]).catch(() => {});
  }
}

/** Opens a channel between Node and tab `tab` over `transport`; `setupMs` is start to both ends open. */
export async function connect(transport: NodeTransport, server: PageServer, tab: TabControl, id: string): Promise<Connection> {
  const t0 = performance.now();
  const pageOpen = tab.next('open', id, 20_000);
  pageOpen.catch(() => undefined);
  if (transport === 'websocket') {
    const nodeEnd = server.dataChannel(id);
    await tab.request('dial', id, { url: server.dataUrl(id) });
    const channel = await nodeEnd;
    await pageOpen;
    return { channel, setupMs: performance.now() - t0, close: async () => channel.close('bench done') };
  }
  const peer = await offererFactory(transport)({});
  const offCandidates = tab.on((e) => {
    if (e.ev === 'candidate' && e.id === id) void peer.addRemoteCandidate(e.candidate as LinkCandidate | null).catch(() => {});
  });
  peer.onLocalCandidate = (candidate) => void tab.request('candidate', id, { candidate }).catch(() => {});
  try {
    const offer = await peer.offer();
    const answer = await tab.request('answer', id, { sdp: offer.sdp });
    await peer.acceptAnswer({ type: 'answer', sdp: String(answer.sdp) });
    const channel = await Promise.race([peer.opened, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${transport} channel did not open within 20 s`)), 20_000).unref())]);
    await pageOpen;
    const setupMs = performance.now() - t0;
    offCandidates();
    return {
      channel,
      setupMs,
      close: async () => {
        channel.close('bench done');
        await peer.close().catch(() => {});
        await tab.request('close', id).catch(() => {});
      },
    };
  } catch (err) {
    offCandidates();
    await peer.close().catch(() => {});
    throw err;
  }
}
