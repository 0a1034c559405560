/**
 * Does a larger UDP receive buffer help werift? (an idea for speed, docs/performance.md). werift 0.25.2 creates its
 * ICE socket with `createSocket(socketType)` (class UdpTransport: werift/lib/index.mjs, the ESM
 * build Node loads; lib/common/src/transport.js in the CJS one) and no options, so the kernel
 * default applies (net.core.rmem_default). This script wraps `dgram.createSocket` in its own
 * process only (and syncs the ESM named export werift imports), so every socket werift creates
 * afterwards gets `setRecvBufferSize(N)` once bound, and measures werift channels to a bench tab
 * with and without it, interleaved: the variants take turns within each repetition, the order
 * rotating. Per variant and repetition, on a fresh connection: RTT of a ~100-byte frame and of
 * a 64 KiB message, MB/s each way with 64 KiB and 256 KiB messages, and the datagrams the kernel
 * dropped for a full receive buffer on each end (the `drops` column of /proc/net/udp for
 * werift's socket and for Chromium's socket it talks to).
 *
 *   node --import tsx bench/udp-rcvbuf.ts [--reps 5] [--buffers 0,4194304] [--bulk-mib 16] [--json FILE]
 *
 * `--buffers`: bytes asked of setRecvBufferSize, 0 = leave the default. Linux doubles the value
 * for bookkeeping and caps the request at net.core.rmem_max. Loopback only; every transfer is
 * bounded in bytes; the browser and the page server are stopped at the end and on Ctrl-C.
 */
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { launchBrowser, resolveBrowser } from '../browser-host/launcher/index.ts';
import { connect } from './channel.ts';
import { LARGE_FRAME, nodeToTab, roundTrips, tabToNode, type Transfer } from './channel-measure.ts';
import { onCleanup, runCleanups } from './cleanup.ts';
import { startPageServer, type TabControl } from './page-server.ts';
import { progress } from './progress.ts';
import { latencySummary, median } from './stats.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    buffers: { type: 'string', default: '0,4194304' },
    'bulk-mib': { type: 'string', default: '16' },
    'rtt-count': { type: 'string', default: '500' },
    'rtt64k-count': { type: 'string', default: '60' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: node --import tsx bench/udp-rcvbuf.ts [--reps 5] [--buffers 0,4194304] [--bulk-mib 16] [--rtt-count 500] [--rtt64k-count 60] [--json FILE]\n');
  process.exit(0);
}
const reps = Number(values.reps);
const buffers = values.buffers.split(',').map(Number);
const bulkBytes = Number(values['bulk-mib']) * 1024 * 1024;
const rttCount = Number(values['rtt-count']);
const rtt64kCount = Number(values['rtt64k-count']);
const SIZES = [65536, 262144];

// ---- the wrapper: werift's sockets get the buffer asked for when they were created ----

interface Tracked {
  socket: dgram.Socket;
  /** The address werift last heard from: Chromium's socket. */
  peerPort?: number;
}
let wanted = 0;
let created: Tracked[] = [];
const originalCreateSocket = dgram.createSocket;
(dgram as { createSocket: unknown }).createSocket = function createSocket(this: unknown, ...args: Parameters<typeof dgram.createSocket>) {
  const socket = (originalCreateSocket as (...a: unknown[]) => dgram.Socket).apply(dgram, args);
  const size = wanted;
  const tracked: Tracked = { socket };
  if (size > 0) socket.once('listening', () => socket.setRecvBufferSize(size));
  socket.once('message', (_data, rinfo) => (tracked.peerPort = rinfo.port));
  created.push(tracked);
  return socket;
};
// werift's ESM build does `import { createSocket } from "dgram"`: update that binding too.
syncBuiltinESMExports();

// ---- kernel counters ----

/** `drops` and `rx_queue` of every 127.0.0.1 UDP socket in /proc/net/udp, by local port. */
function udpTable(): Map<number, { drops: number; rxQueue: number }> {
  const out = new Map<number, { drops: number; rxQueue: number }>();
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const [address, port] = f[1]!.split(':');
    if (address !== '0100007F') continue;
    out.set(parseInt(port!, 16), { drops: Number(f[f.length - 1]), rxQueue: parseInt(f[4]!.split(':')[1]!, 16) });
  }
  return out;
}

/** Machine-wide UDP RcvbufErrors (every process on the machine counts). */
function rcvbufErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf('RcvbufErrors')]);
}

/** The receive buffer the kernel gives a local socket (`rb` in `ss -m`), or null. */
function kernelRb(port: number): number | null {
  try {
    const out = execFileSync('ss', ['-uanm', 'sport', '=', `:${port}`], { encoding: 'utf8', timeout: 5000 });
    const m = /rb(\d+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// ---- one measured connection ----

interface Sample {
  buffer: number;
  rep: number;
  nodeRb: number | null;
  chromiumRb: number | null;
  rttP50: number | null;
  rttP99: number | null;
  rtt64kP50: number | null;
  rtt64kP99: number | null;
  /** By message size and direction: MB/s, Node CPU s/MB, datagrams dropped at Node's and at Chromium's socket. */
  bulk: Record<string, Record<'toTab' | 'toNode', Transfer & { nodeDrops: number; chromiumDrops: number }>>;
  machineRcvbufErrors: number;
}

async function measureOnce(server: Awaited<ReturnType<typeof startPageServer>>, tab: TabControl, buffer: number, rep: number, id: string): Promise<Sample> {
  wanted = buffer;
  created = [];
  const errors0 = rcvbufErrors();
  const conn = await connect('werift', server, tab, id);
  wanted = 0;
  try {
    const ice = created.filter((t) => {
      try {
        return t.socket.address().address === '127.0.0.1';
      } catch {
        return false;
      }
    });
    if (ice.length !== 1) throw new Error(`expected one werift socket on 127.0.0.1, found ${ice.length}`);
    const mine = ice[0]!;
    const small = latencySummary(await roundTrips(conn.channel, tab, id, rttCount, 100));
    const big = latencySummary(await roundTrips(conn.channel, tab, id, rtt64kCount, 10, LARGE_FRAME));
    const nodePort = mine.socket.address().port;
    const peerPort = mine.peerPort;
    if (!peerPort) throw new Error('werift never heard from Chromium');
    const sample: Sample = {
      buffer,
      rep,
      nodeRb: kernelRb(nodePort),
      chromiumRb: kernelRb(peerPort),
      rttP50: small.p50,
      rttP99: small.p99,
      rtt64kP50: big.p50,
      rtt64kP99: big.p99,
      bulk: {},
      machineRcvbufErrors: 0,
    };
    for (const size of SIZES) {
      const row = {} as Sample['bulk'][string];
      for (const direction of ['toTab', 'toNode'] as const) {
        const before = udpTable();
        const transfer = direction === 'toTab' ? await nodeToTab(conn.channel, tab, id, size, bulkBytes) : await tabToNode(conn.channel, tab, id, size, bulkBytes);
        const after = udpTable();
        const dropped = (port: number) => (after.get(port)?.drops ?? 0) - (before.get(port)?.drops ?? 0);
        row[direction] = { ...transfer, nodeDrops: dropped(nodePort), chromiumDrops: dropped(peerPort) };
      }
      sample.bulk[size] = row;
    }
    sample.machineRcvbufErrors = rcvbufErrors() - errors0;
    return sample;
  } finally {
    await conn.close();
  }
}

// ---- the run ----

const label = (b: number) => (b === 0 ? 'default' : `${b / 1024} KiB`);
const samples: Sample[] = [];
const started = new Date();
const load0 = loadavg();
let stopping = false;
process.on('SIGINT', () => {
  if (stopping) return;
  stopping = true;
  void runCleanups().then(() => process.exit(130));
});

try {
  progress(`udp-rcvbuf: rmem_default ${readFileSync('/proc/sys/net/core/rmem_default', 'utf8').trim()}, rmem_max ${readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim()}; load ${load0.map((l) => l.toFixed(2)).join(' ')}`);
  const server = await startPageServer();
  onCleanup(() => server.close());
  const browser = await launchBrowser({ executablePath: resolveBrowser().path, logger: { warn: () => {}, error: (f, m) => progress(`chromium: ${m} ${JSON.stringify(f)}`) } });
  onCleanup(() => browser.close());
  await browser.openTabs(server.pageUrl('a'), 1, { readyExpression: 'window.__benchReady === true', timeoutMs: 30_000 });
  const tab = await server.tab('a');
  await browser.detach();
  await import('../ingress/rtc-peer.ts');
  // One unrecorded connection: the first werift connection of a process is the slowest.
  const warm = await connect('werift', server, tab, 'warm');
  await warm.close();
  let seq = 0;
  for (let rep = 0; rep < reps; rep++) {
    const turn = buffers.map((_, i) => buffers[(i + rep) % buffers.length]!);
    for (const buffer of turn) {
      const s = await measureOnce(server, tab, buffer, rep, `rb-${++seq}`);
      samples.push(s);
      const b = (size: number) => `${size / 1024}K ${s.bulk[size]!.toTab.mbps.toFixed(1)}/${s.bulk[size]!.toNode.mbps.toFixed(1)} MB/s (drops node ${s.bulk[size]!.toTab.nodeDrops}+${s.bulk[size]!.toNode.nodeDrops}, chromium ${s.bulk[size]!.toTab.chromiumDrops}+${s.bulk[size]!.toNode.chromiumDrops})`;
      progress(`rep ${rep + 1}/${reps} ${label(buffer)} (rb node ${s.nodeRb}, chromium ${s.chromiumRb}): rtt ${s.rttP50?.toFixed(3)} ms, 64K rtt ${s.rtt64kP50?.toFixed(3)} ms, ${SIZES.map(b).join(', ')}`);
    }
  }
} finally {
  await runCleanups();
}

// ---- the table: medians over repetitions ----

const m = (xs: Array<number | null>, d: number) => median(xs)?.toFixed(d) ?? '-';
const rows: string[][] = buffers.map((buffer) => {
  const ss = samples.filter((s) => s.buffer === buffer);
  const cells = [label(buffer), String(ss.length), String(ss[0]?.nodeRb ?? '-'), String(ss[0]?.chromiumRb ?? '-'), m(ss.map((s) => s.rttP50), 3), m(ss.map((s) => s.rttP99), 3), m(ss.map((s) => s.rtt64kP50), 3), m(ss.map((s) => s.rtt64kP99), 3)];
  for (const size of SIZES) {
    for (const dir of ['toTab', 'toNode'] as const) cells.push(m(ss.map((s) => s.bulk[size]![dir].mbps), 1));
  }
  for (const size of SIZES) {
    for (const dir of ['toTab', 'toNode'] as const) cells.push(m(ss.map((s) => s.bulk[size]![dir].cpuSecondsPerMb), 4));
  }
  for (const size of SIZES) {
    for (const dir of ['toTab', 'toNode'] as const) cells.push(`${m(ss.map((s) => s.bulk[size]![dir].nodeDrops), 0)}/${m(ss.map((s) => s.bulk[size]![dir].chromiumDrops), 0)}`);
  }
  return cells;
});
const header = ['werift rcvbuf', 'n', 'node rb', 'chromium rb', 'rtt p50', 'p99', '64K rtt p50', 'p99'];
for (const size of SIZES) header.push(`→tab ${size / 1024}K`, `←tab ${size / 1024}K`);
for (const size of SIZES) header.push(`CPU →${size / 1024}K`, `CPU ←${size / 1024}K`);
for (const size of SIZES) header.push(`drops →${size / 1024}K`, `drops ←${size / 1024}K`);
const load1 = loadavg();
process.stdout.write(
  `werift with and without a larger UDP receive buffer: medians of ${reps} interleaved repetitions, ${bulkBytes / 1024 / 1024} MiB per transfer; ` +
    `load ${load0.map((l) => l.toFixed(2)).join(' ')} at the start, ${load1.map((l) => l.toFixed(2)).join(' ')} at the end\n` +
    `rb: the kernel's receive buffer (ss -m); drops: datagrams dropped for a full buffer during the transfer, at Node's socket / at Chromium's\n` +
    `| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n` +
    rows.map((r) => `| ${r.join(' | ')} |`).join('\n') +
    '\n',
);
if (values.json) {
  await writeFile(values.json, JSON.stringify({ started: started.toISOString(), loadAtStart: load0, loadAtEnd: load1, reps, buffers, bulkBytes, rttCount, rtt64kCount, samples }, null, 2) + '\n');
  progress(`wrote ${values.json}`);
}
process.exit(0);
