/**
 * The page side of the channel benchmark (bundled with esbuild, served by bench/page-server.ts).
 * Driven over its own control WebSocket, never through DevTools: puppeteer is detached before
 * anything is measured. Uses the same browser adapters as the host page (RtcChannel,
 * BrowserWebSocketChannel) so what is measured is what dcdn runs.
 *
 * Control requests are JSON `{seq, op, id, ...}` answered by `{re: seq, ok, ...}`; the page
 * also sends events `{ev, id, ...}` (candidates, channel open, a sink that got everything).
 */
import { answerOffer, type Answerer } from '../browser-host/rtc-answerer.ts';
import { RtcChannel } from '../browser-host/rtc-channel.ts';
import { BrowserWebSocketChannel } from '../browser-host/ws-channel.ts';
import { WS_MAX_MESSAGE_SIZE, type Channel } from '../protocol/index.ts';

declare global {
  interface Window {
    __benchReady?: boolean;
  }
}

type Message = Record<string, unknown> & { seq: number; op: string; id: string };

/** Sender pauses above this many queued bytes and resumes when the queue drains to LOW_WATER. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

const channels = new Map<string, Channel>();
const answerers = new Map<string, Answerer>();
const offerers = new Map<string, RTCPeerConnection>();
const control = new WebSocket(`ws://${location.host}/control${location.search}`);

function emit(message: Record<string, unknown>): void {
  control.send(JSON.stringify(message));
}

function opened(id: string, channel: Channel): void {
  channels.set(id, channel);
  emit({ ev: 'open', id, maxMessageSize: channel.maxMessageSize });
}

function channelOf(id: string): Channel {
  const channel = channels.get(id);
  if (!channel) throw new Error(`no channel ${id}`);
  return channel;
}

const handlers: Record<string, (m: Message) => Promise<Record<string, unknown>> | Record<string, unknown>> = {
  /** Answers a Node offerer (werift or node-datachannel), as the host page does. */
  async answer(m) {
    const a = await answerOffer({ type: 'offer', sdp: String(m.sdp) });
    answerers.set(m.id, a);
    a.onLocalCandidate = (candidate) => emit({ ev: 'candidate', id: m.id, candidate });
    void a.channel.then((channel) => opened(m.id, channel));
    return { sdp: a.answer.sdp ?? '' };
  },
  async candidate(m) {
    if (!m.candidate) return {};
    const candidate = m.candidate as RTCIceCandidateInit;
    const answerer = answerers.get(m.id);
    if (answerer) await answerer.addRemoteCandidate(candidate as never);
    else await offerers.get(m.id)?.addIceCandidate(candidate);
    return {};
  },
  /** This tab offers, for the tab-to-tab ceiling; another tab answers with `answer`. */
  async p2pOffer(m) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    offerers.set(m.id, pc);
    const dc = pc.createDataChannel('dcdn', { ordered: true });
    dc.addEventListener('open', () => opened(m.id, new RtcChannel(dc, pc)), { once: true });
    pc.addEventListener('icecandidate', (e) => {
      if (e.candidate?.candidate) emit({ ev: 'candidate', id: m.id, candidate: e.candidate.toJSON() });
    });
    await pc.setLocalDescription(await pc.createOffer());
    // Wait for host candidates so the offer carries them: the answering tab may not exist yet
    // when the first trickled ones would arrive.
    await new Promise<void>((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const timer = setTimeout(resolve, 3000);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') (clearTimeout(timer), resolve());
      });
    });
    return { sdp: pc.localDescription?.sdp ?? '' };
  },
  async p2pAccept(m) {
    await offerers.get(m.id)!.setRemoteDescription({ type: 'answer', sdp: String(m.sdp) });
    return {};
  },
  dial(m) {
    const ws = new WebSocket(String(m.url));
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('open', () => opened(m.id, new BrowserWebSocketChannel(ws, WS_MAX_MESSAGE_SIZE)), { once: true });
    return {};
  },
  echo(m) {
    const channel = channelOf(m.id);
    channel.onmessage = (data) => channel.send(data);
    return {};
  },
  /** Round trips to a tab that echoes, timed in this page: Chromium's own data-channel RTT. */
  async pingpong(m) {
    const channel = channelOf(m.id);
    const message = new Uint8Array(Number(m.size)).fill(0x61);
    const samples: number[] = [];
    let arrived: () => void = () => {};
    channel.onmessage = () => arrived();
    for (let i = 0; i < Number(m.warmup) + Number(m.count); i++) {
      const echoed = new Promise<void>((resolve) => (arrived = resolve));
      const t0 = performance.now();
      channel.send(message);
      await echoed;
      if (i >= Number(m.warmup)) samples.push(performance.now() - t0);
    }
    channel.onmessage = null;
    return { samples };
  },
  /** Counts what arrives; tells Node over control once `total` bytes are in. */
  sink(m) {
    const channel = channelOf(m.id);
    const total = Number(m.total);
    let got = 0;
    channel.onmessage = (data) => {
      got += data.byteLength;
      if (got >= total) {
        channel.onmessage = null;
        emit({ ev: 'sunk', id: m.id, bytes: got });
      }
    };
    return {};
  },
  /** Sends `total` bytes in `size`-byte messages, keeping the send queue between the marks. */
  async source(m) {
    const channel = channelOf(m.id);
    const size = Number(m.size);
    const total = Number(m.total);
    const message = new Uint8Array(size).map((_, i) => i & 0xff);
    channel.lowWaterMark = LOW_WATER;
    const started = performance.now();
    for (let sent = 0; sent < total; sent += size) {
      if (channel.bufferedAmount > HIGH_WATER) await drained(channel);
      channel.send(total - sent >= size ? message : message.subarray(0, total - sent));
    }
    return { queuedMs: performance.now() - started };
  },
  close(m) {
    channels.get(m.id)?.close('bench done');
    answerers.get(m.id)?.pc.close();
    offerers.get(m.id)?.close();
    channels.delete(m.id);
    answerers.delete(m.id);
    offerers.delete(m.id);
    return {};
  },
};

function drained(channel: Channel): Promise<void> {
  return new Promise((resolve) => {
    channel.ondrain = () => {
      channel.ondrain = null;
      resolve();
    };
  });
}

control.addEventListener('message', async (event: MessageEvent) => {
  const m = JSON.parse(String(event.data)) as Message;
  try {
    const handler = handlers[m.op];
    if (!handler) throw new Error(`unknown op ${m.op}`);
    emit({ re: m.seq, ok: true, ...(await handler(m)) });
  } catch (err) {
    emit({ re: m.seq, ok: false, error: String(err) });
  }
});
control.addEventListener('open', () => (window.__benchReady = true));
window.addEventListener('error', (e) => emit({ ev: 'error', id: '', message: String(e.message) }));
window.addEventListener('unhandledrejection', (e) => emit({ ev: 'error', id: '', message: String(e.reason) }));
