/**
 * End to end over the optional node-datachannel backend (`--rtc node-datachannel`): clients →
 * ingress → libdatachannel → Chromium tab → the app's handler, and back. The same request path
 * as e2e-webrtc.test.ts; what differs is the WebRTC stack in the ingress, so every test also
 * checks that it really was node-datachannel that carried the traffic.
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { disconnectBrowser } from './browser.ts';
import { killTabMidStream } from './tab-death.ts';
import { boundedDownload, describeDownload } from './bounded-download.ts';
import { startNetwork, until, type Network } from './network.ts';

// werift binds and sends through node:dgram; libdatachannel through its own native sockets. Any
// dgram socket or datagram here would mean werift carried something.
let dgramUse = 0;
const originalSend = dgram.Socket.prototype.send;
const originalBind = dgram.Socket.prototype.bind;

const MiB = 1024 * 1024;
let net: Network;
let ingress: Ingress;

beforeAll(async () => {
  dgram.Socket.prototype.send = function (this: dgram.Socket, ...args: unknown[]) {
    dgramUse++;
    return (originalSend as (...a: unknown[]) => void).apply(this, args);
  } as typeof dgram.Socket.prototype.send;
  dgram.Socket.prototype.bind = function (this: dgram.Socket, ...args: unknown[]) {
    dgramUse++;
    return (originalBind as (...a: unknown[]) => dgram.Socket).apply(this, args);
  } as typeof dgram.Socket.prototype.bind;
  net = await startNetwork();
  ingress = await net.addIngress({ transport: 'webrtc', rtcBackend: 'node-datachannel' });
  await Promise.all([net.addTab('tab-a'), net.addTab('tab-b')]);
  await until(() => ingress.pool.size === 2, 20_000, 'two hosts connected');
}, 60_000);

afterAll(async () => {
  dgram.Socket.prototype.send = originalSend;
  dgram.Socket.prototype.bind = originalBind;
  await net?.close();
  await disconnectBrowser();
});

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

/** Local addresses of this process's UDP sockets, from /proc (Linux): libdatachannel's sockets. */
function udpSocketAddresses(): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const addresses: string[] = [];
  for (const file of ['/proc/self/net/udp', '/proc/self/net/udp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || !inodes.has(fields[9]!)) continue;
      addresses.push(procAddress(fields[1]!.split(':')[0]!));
    }
  }
  return addresses;
}

/** /proc/net/udp's hex address (host byte order, little-endian here) to text. */
function procAddress(hex: string): string {
  if (hex.length === 8) return [...Buffer.from(hex, 'hex').reverse()].join('.');
  const words = Buffer.from(hex, 'hex');
  for (let i = 0; i < 16; i += 4) words.subarray(i, i + 4).reverse();
  return words.toString('hex').replace(/(.{4})(?!$)/g, '$1:');
}

describe('the request path over node-datachannel', () => {
  it('connects every tab over a native data channel bound to 127.0.0.1, with werift idle', () => {
    // Not WebSocket: both hosts joined over WebRTC. Not werift: no dgram socket was ever bound.
    // So the UDP sockets this process holds are libdatachannel's, one per tab.
    expect(ingress.pool.list().map((h) => [h.transport, h.rtc])).toEqual([['webrtc', 'node-datachannel'], ['webrtc', 'node-datachannel']]);
    expect(dgramUse).toBe(0);
    const udp = udpSocketAddresses();
    expect(udp).toHaveLength(2);
    expect(udp.filter((a) => a !== '127.0.0.1')).toEqual([]);
  });

  it('answers GET / from JavaScript in a headless Chromium tab', async () => {
    const res = await fetch(`${ingress.url}/`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain('Hello from a browser tab');
    expect(res.headers.get('dcdn-transport')).toBe('webrtc');
    expect(res.headers.get('dcdn-host')).toMatch(/^tab-[ab]$/);
  });

  it('echoes a 10 MiB POST byte-identical', async () => {
    const body = pattern(10 * 1024 * 1024);
    const res = await fetch(`${ingress.url}/echo`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': 'application/octet-stream' } });
    const echoed = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    expect(res.headers.get('dcdn-transport')).toBe('webrtc');
    expect(echoed.length).toBe(body.length);
    expect(createHash('sha256').update(echoed).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  }, 30_000);

  it('serves 200 concurrent GETs across both hosts', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        fetch(`${ingress.url}/`).then(async (r) => ({ status: r.status, host: r.headers.get('dcdn-host'), transport: r.headers.get('dcdn-transport'), body: await r.text() })),
      ),
    );
    expect(results.filter((r) => r.status === 200 && r.transport === 'webrtc')).toHaveLength(200);
    expect(new Set(results.map((r) => r.host))).toEqual(new Set(['tab-a', 'tab-b']));
  }, 30_000);

  it('streams a 64 MiB /bytes download with the exact bytes, bounded ingress queue and flat live memory', async () => {
    // Hundreds of stream windows; the client stops reading every 16 MiB, so a queue without
    // backpressure passes its bound within a pause (test/bounded-download.ts).
    const d = await boundedDownload(ingress, { bytes: 64 * MiB });
    console.info(`[ndc e2e] /bytes: ${describeDownload(d)}`);
    expect(d.received).toBe(64 * MiB);
    expect(d.mismatch).toBe(-1);
    expect(d.transport).toBe('webrtc');
    // Flow control keeps at most a window per stream in flight, whatever the body size.
    expect(d.growth).toBeLessThan(16 * MiB);
    expect(dgramUse).toBe(0);
  }, 180_000);
});

describe('when a host tab dies', () => {
  it('aborts only that tab’s responses and serves the next requests from the other tab within 5 s', async () => {
    const victimName = 'tab-a';
    const { results, probes, noticedMs } = await killTabMidStream(net, ingress, victimName, 40);
    expect(probes.filter((p) => p.status !== 200)).toEqual([]);
    expect(ingress.pool.list().map((h) => h.name)).toEqual(['tab-b']);
    console.info(`[ndc e2e] dead tab out of the pool after ${noticedMs} ms`);

    for (const r of results) expect(r.complete, `every stream: ${JSON.stringify(results)}`).toBe(r.host !== victimName);
    expect(results.some((r) => r.host === victimName)).toBe(true);
    const ok = await Promise.all(Array.from({ length: 10 }, () => fetch(`${ingress.url}/`).then((r) => r.status)));
    expect(ok.every((s) => s === 200)).toBe(true);
    expect(dgramUse).toBe(0);
  }, 20_000);
});
