import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import type { Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Answerer } from '../browser-host/rtc-answerer.ts';
import type { RtcChannel } from '../browser-host/rtc-channel.ts';
import { buildWeriftConfig, candidateAddress, createOfferer, type WeriftOfferer } from '../ingress/rtc-peer.ts';
import type { WeriftChannel } from '../ingress/werift-channel.ts';
import { addBundle, disconnectBrowser, newPage } from './browser.ts';

/** What the bundle of browser-host/rtc-answerer.ts and the test's page-side state put on window. */
interface TestWindow {
  dcdnRtc: typeof import('../browser-host/rtc-answerer.ts');
  answerer: Answerer;
  channel: RtcChannel;
  received: Uint8Array[];
  receivedBytes: number;
  closeReasons: string[];
  nextCheck: Promise<string>;
  pattern: typeof pattern;
  nextHash: Promise<string>;
  sendCandidate(candidate: unknown): Promise<void>;
  bulkDone(): Promise<void>;
}
declare const window: TestWindow;

const MiB = 1024 * 1024;
const BULK_BYTES = 32 * MiB;
/** Pause sending above this many queued bytes... */
const HIGH_WATER = 1 * MiB;
/** ...until the queue drains to this. */
const LOW_WATER = 256 * 1024;

// Every UDP datagram this process sends, by destination: proof that werift stays on loopback.
const udpDestinations = new Set<string>();
const originalSend = dgram.Socket.prototype.send;

let page: Page;
let peer: WeriftOfferer;
let channel: WeriftChannel;
let offerSdp: string;
let setupMs: number;

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/** Waits for `channel.ondrain` when more than HIGH_WATER is queued; returns the largest queue seen. */
async function sendAll(ch: WeriftChannel, data: Uint8Array): Promise<number> {
  ch.lowWaterMark = LOW_WATER;
  let maxBuffered = 0;
  for (let offset = 0; offset < data.byteLength; offset += ch.maxMessageSize) {
    if (ch.bufferedAmount > HIGH_WATER) {
      await new Promise<void>((resolve) => {
        ch.ondrain = () => {
          ch.ondrain = null;
          resolve();
        };
      });
    }
    ch.send(data.subarray(offset, offset + ch.maxMessageSize));
    maxBuffered = Math.max(maxBuffered, ch.bufferedAmount);
  }
  return maxBuffered;
}

/** Deterministic bytes (xorshift32), generated alike in Node and, via toString(), in the tab. */
function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function sha256(chunks: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

beforeAll(async () => {
  dgram.Socket.prototype.send = function (this: dgram.Socket, ...args: unknown[]) {
    // send(msg, [offset, length,] port, address, callback?): the address is the first string.
    const address = args.slice(1).find((a) => typeof a === 'string');
    udpDestinations.add(typeof address === 'string' ? address : `connected:${JSON.stringify(this.remoteAddress?.() ?? null)}`);
    return (originalSend as (...a: unknown[]) => void).apply(this, args);
  } as typeof dgram.Socket.prototype.send;

  page = await newPage();
  await page.goto('about:blank');
  await addBundle(page, 'browser-host/rtc-answerer.ts', 'dcdnRtc');
  await page.evaluate(`window.pattern = ${pattern.toString()}`);

  // The page trickles its candidates straight into werift: no signaling server in this test.
  await page.exposeFunction('sendCandidate', (candidate: Parameters<WeriftOfferer['addRemoteCandidate']>[0]) =>
    peer.addRemoteCandidate(candidate),
  );
  const started = performance.now();
  offerSdp = await connectTab();
  setupMs = performance.now() - started;
  console.info(`[webrtc e2e] offer to open: ${setupMs.toFixed(0)} ms (werift reports ${peer.setupMs?.toFixed(0)} ms)`);
});

/** Connects a new werift peer to the tab (replacing `peer`, `channel`, `window.channel`); returns the offer SDP. */
async function connectTab(): Promise<string> {
  peer = createOfferer();
  const offer = await peer.offer();
  const answer = await page.evaluate(async (offer) => {
    window.received = [];
    window.receivedBytes = 0;
    window.closeReasons = [];
    const answerer = await window.dcdnRtc.answerOffer(offer);
    answerer.onLocalCandidate = (candidate) => void window.sendCandidate(candidate);
    window.answerer = answerer;
    void answerer.channel.then((ch) => {
      window.channel = ch;
      ch.onclose = (reason) => window.closeReasons.push(reason);
    });
    return answerer.answer;
  }, offer);
  await peer.acceptAnswer({ type: 'answer', sdp: answer.sdp ?? '' });
  channel = await peer.opened;
  await page.waitForFunction(() => window.channel?.isOpen === true, { timeout: 5000, polling: 100 });
  return offer.sdp;
}

afterAll(async () => {
  dgram.Socket.prototype.send = originalSend;
  await peer?.close();
  await page?.close();
  await disconnectBrowser();
});

describe('werift offerer configuration', () => {
  it('runs ICE-lite with no STUN server when the operator configured none', () => {
    expect(peer.config.iceServers).toEqual([]);
    expect(peer.config.iceLite).toBe(true);
    expect(peer.config.iceAdditionalHostAddresses).toEqual(['127.0.0.1']);
    expect(peer.config.iceUseIpv4).toBe(false);
    expect(peer.config.iceUseIpv6).toBe(false);
    expect(peer.config.iceInterfaceAddresses).toEqual({ udp4: '127.0.0.1' });
  });

  it('runs full ICE against the STUN server the operator named', () => {
    const config = buildWeriftConfig({ iceServers: [{ urls: 'stun:127.0.0.1:3478' }] });
    expect(config.iceLite).toBe(false);
    expect(config.iceServers).toEqual([{ urls: 'stun:127.0.0.1:3478' }]);
  });

  it('uses the TURN server as STUN server so werift never falls back to Google STUN', () => {
    const turn = { urls: 'turn:turn.example.net:3479?transport=udp', username: 'u', credential: 'p' };
    expect(buildWeriftConfig({ iceServers: [turn] }).iceServers).toEqual([{ urls: 'stun:turn.example.net:3479' }, turn]);
    const turns = { urls: 'turns:turn.example.net:5349', username: 'u', credential: 'p' };
    expect(buildWeriftConfig({ iceServers: [turns] }).iceServers?.[0]).toEqual({ urls: 'stun:turn.example.net:3478' });
  });

  it('refuses an ICE server URL werift would skip, rather than fall back to Google STUN', () => {
    expect(() => buildWeriftConfig({ iceServers: [{ urls: 'stun.example.net:3478' }] })).toThrow(TypeError);
  });

  it('neither binds to loopback nor filters sources when it advertises a public address', () => {
    const config = buildWeriftConfig({ advertisedAddresses: ['203.0.113.7'] });
    expect(config.iceInterfaceAddresses).toBeUndefined();
    expect(config.iceFilterStunResponse).toBeUndefined();
  });
});

describe('werift data channel to a Chromium tab over loopback', () => {
  it('opens the channel', () => {
    expect(channel.isOpen).toBe(true);
    expect(setupMs).toBeGreaterThan(0);
  });

  it('advertises only 127.0.0.1 candidates in the offer, as an ICE-lite agent', () => {
    const candidates = offerSdp.split(/\r?\n/).filter((line) => line.startsWith('a=candidate:'));
    expect(candidates.length).toBeGreaterThan(0);
    expect(candidates.map(candidateAddress)).toEqual(candidates.map(() => '127.0.0.1'));
    expect(offerSdp).toMatch(/^a=ice-lite\r?$/m);
  });

  it('selects a loopback candidate pair in Chromium', async () => {
    const pair = await page.evaluate(async () => {
      const stats = await window.answerer.pc.getStats();
      const byId = new Map<string, Record<string, unknown>>();
      stats.forEach((s: Record<string, unknown>) => byId.set(s['id'] as string, s));
      const selected = [...byId.values()].find((s) => s['type'] === 'candidate-pair' && s['nominated'] === true);
      return {
        local: byId.get(selected?.['localCandidateId'] as string)?.['address'],
        remote: byId.get(selected?.['remoteCandidateId'] as string)?.['address'],
      };
    });
    expect(pair).toEqual({ local: '127.0.0.1', remote: '127.0.0.1' });
  });

  it('negotiates a 262144-byte max message size on both sides', async () => {
    expect(channel.maxMessageSize).toBe(262144);
    expect(await page.evaluate(() => window.channel.maxMessageSize)).toBe(262144);
  });

  it('carries maxMessageSize-byte messages byte-identical in both directions', async () => {
    const max = channel.maxMessageSize;
    // Node to tab: the tab compares what arrived with the pattern it expects. (crypto.subtle is
    // not there to hash with: about:blank is not a secure context.)
    await page.evaluate((seed) => {
      window.nextCheck = new Promise<string>((resolve) => {
        window.channel.onmessage = (data) => {
          const expected = window.pattern(seed, data.byteLength);
          const mismatch = data.findIndex((byte, i) => byte !== expected[i]);
          resolve(mismatch === -1 ? `ok ${data.byteLength}` : `mismatch at ${mismatch}`);
        };
      });
    }, 1);
    channel.send(pattern(1, max));
    expect(await page.evaluate(() => window.nextCheck)).toBe(`ok ${max}`);

    // Tab to Node.
    const nodeGot = new Promise<Uint8Array>((resolve) => {
      channel.onmessage = (data) => resolve(data.slice());
    });
    await page.evaluate((seed) => window.channel.send(window.pattern(seed, window.channel.maxMessageSize)), 2);
    expect(Buffer.from(await nodeGot).equals(pattern(2, max))).toBe(true);
  });

  it('streams 32 MiB to the tab and back with both send queues bounded', async () => {
    const data = randomBytes(BULK_BYTES);
    let arrived!: () => void;
    const allArrived = new Promise<void>((resolve) => (arrived = resolve));
    await page.exposeFunction('bulkDone', () => arrived());
    await page.evaluate((total) => {
      window.received = [];
      window.receivedBytes = 0;
      window.channel.onmessage = (bytes) => {
        window.received.push(bytes);
        window.receivedBytes += bytes.byteLength;
        if (window.receivedBytes === total) void window.bulkDone();
      };
    }, BULK_BYTES);

    const t0 = performance.now();
    const nodeMaxBuffered = await sendAll(channel, data);
    await allArrived;
    const toTabMs = performance.now() - t0;

    const back: Uint8Array[] = [];
    let backBytes = 0;
    const allBack = new Promise<void>((resolve) => {
      channel.onmessage = (bytes) => {
        back.push(bytes.slice());
        backBytes += bytes.byteLength;
        if (backBytes === BULK_BYTES) resolve();
      };
    });
    const t1 = performance.now();
    // The tab echoes what it stored with the same high/low water marks.
    const tabMaxBuffered = await page.evaluate(
      async (high, low) => {
        const ch = window.channel;
        ch.lowWaterMark = low;
        let maxBuffered = 0;
        for (const chunk of window.received) {
          if (ch.bufferedAmount > high) {
            await new Promise<void>((resolve) => {
              ch.ondrain = () => {
                ch.ondrain = null;
                resolve();
              };
            });
          }
          ch.send(chunk);
          maxBuffered = Math.max(maxBuffered, ch.bufferedAmount);
        }
        window.received = [];
        return maxBuffered;
      },
      HIGH_WATER,
      LOW_WATER,
    );
    await allBack;
    const toNodeMs = performance.now() - t1;

    const mbps = (ms: number) => (BULK_BYTES / 1e6 / (ms / 1000)).toFixed(2);
    console.info(
      `[webrtc e2e] 32 MiB node->tab ${mbps(toTabMs)} MB/s (max queued ${nodeMaxBuffered}), ` +
        `tab->node ${mbps(toNodeMs)} MB/s (max queued ${tabMaxBuffered})`,
    );
    // One message past the high-water mark at most: the bound the multiplexer can rely on.
    expect(nodeMaxBuffered).toBeLessThanOrEqual(HIGH_WATER + channel.maxMessageSize);
    expect(tabMaxBuffered).toBeLessThanOrEqual(HIGH_WATER + channel.maxMessageSize);
    expect(sha256(back)).toBe(sha256([data]));
  }, 60_000);

  it('throws on both sides when a message exceeds maxMessageSize', async () => {
    let code: unknown;
    try {
      channel.send(new Uint8Array(channel.maxMessageSize + 1));
    } catch (error) {
      code = (error as { code?: unknown }).code;
    }
    expect(code).toBe('PROTO_MESSAGE_TOO_LARGE');
    const tabCode = await page.evaluate(() => {
      try {
        window.channel.send(new Uint8Array(window.channel.maxMessageSize + 1));
      } catch (error) {
        return (error as { code?: unknown }).code;
      }
      return 'did not throw';
    });
    expect(tabCode).toBe('PROTO_MESSAGE_TOO_LARGE');
  });

  it('refuses an empty message, which would stall werift\'s ordered stream', () => {
    expect(() => channel.send(new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'PROTO_FRAME_INVALID' }));
  });

  it('sent every werift datagram to a loopback address', () => {
    expect(udpDestinations.size).toBeGreaterThan(0);
    expect([...udpDestinations].filter((a) => !isLoopback(a))).toEqual([]);
  });

  // Runs after the tests that share the first channel: it closes that channel.
  it('closes both ends once when the ingress closes, and throws on send after close', async () => {
    const reasons: string[] = [];
    channel.onclose = (reason) => reasons.push(reason);
    channel.close('test done');
    expect(reasons).toEqual(['test done']);
    expect(channel.isOpen).toBe(false);
    expect(() => channel.send(new Uint8Array(1))).toThrow(expect.objectContaining({ code: 'PROTO_SESSION_CLOSED' }));
    await page.waitForFunction(() => window.closeReasons.length > 0, { timeout: 15_000, polling: 100 });
    const tab = await page.evaluate(() => {
      let code: unknown = 'did not throw';
      try {
        window.channel.send(new Uint8Array(1));
      } catch (error) {
        code = (error as { code?: unknown }).code;
      }
      return { reasons: window.closeReasons, isOpen: window.channel.isOpen, code };
    });
    // Closing the channel closes werift's association too (SCTP ABORT, cause 12 "user initiated
    // abort"), which Chromium reports as an sctp-failure error just before the close event.
    expect(tab).toEqual({ reasons: [expect.stringMatching(/closed|sctp-failure/)], isOpen: false, code: 'PROTO_SESSION_CLOSED' });
    expect(reasons).toEqual(['test done']);
  }, 20_000);

  it('closes the werift end once when the tab closes its channel', async () => {
    await connectTab();
    const reasons: string[] = [];
    const closed = new Promise<void>((resolve) => {
      channel.onclose = (reason) => {
        reasons.push(reason);
        resolve();
      };
    });
    await page.evaluate(() => window.channel.close('tab done'));
    await closed;
    expect(channel.isOpen).toBe(false);
    // werift's close() finishes asynchronously: the state follows within moments, not at once.
    const deadline = Date.now() + 2000;
    while (peer.connectionState !== 'closed' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(peer.connectionState).toBe('closed');
    expect(await page.evaluate(() => window.closeReasons)).toEqual(['tab done']);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(reasons).toHaveLength(1);
  });

  // A closed tab is not noticed by werift: as an ICE-lite agent it runs no consent checks, and
  // neither the DTLS nor the SCTP layer reports the silence (measured: no close within 150 s).
  // The multiplexer's heartbeat is the detector (docs/webrtc.md); test/e2e-webrtc.test.ts
  // ("when a host tab dies") asserts it notices a closed tab within 3 s.
});
