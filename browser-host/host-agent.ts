import { parseLinkSignal, Session, type LinkSignal, type SessionOptions, type TransportKind } from '../protocol/index.ts';
import { SignalingClient } from '../signaling/client.ts';
import type { AppRef } from './app-registry.ts';
import type { AppRunner } from './app-runner.ts';
import { answerOffer, type Answerer } from './rtc-answerer.ts';
import { BrowserWebSocketChannel } from './ws-channel.ts';

/** Largest message over the WebSocket transport; the ingress uses the same figure. */
const WS_MAX_MESSAGE_SIZE = 256 * 1024;

export interface HostAgentOptions {
  /** `ws(s)://signal/v1/signal`. */
  signalUrl: string;
  token: string;
  /** Shown to operators (`dcdn-host` header, health). */
  name: string;
  runner: AppRunner;
  /** Operator-configured STUN/TURN; default none. */
  iceServers?: RTCIceServer[];
  session?: Partial<Omit<SessionOptions, 'role'>>;
  log?: (line: string) => void;
}

/** One connection to one ingress. */
interface IngressLink {
  conn: string;
  answerer: Answerer | null;
  session: Session | null;
  transport: TransportKind | null;
}

/**
 * The host side of dcdn in a tab: joins signaling, answers each ingress's offer (or dials its
 * WebSocket endpoint when told to), and serves every session with the app runner.
 */
export class HostAgent {
  /** Stable for the life of the tab, so ingresses recognise it across signaling reconnects. */
  readonly hostId = crypto.randomUUID();
  readonly #opts: HostAgentOptions;
  readonly #signaling: SignalingClient;
  readonly #links = new Map<string, IngressLink>();
  readonly #log: (line: string) => void;
  onchange: (() => void) | null = null;
  /** The deployed apps' active versions, as signaling announces them. */
  onapps: ((apps: AppRef[]) => void) | null = null;

  constructor(options: HostAgentOptions) {
    this.#opts = options;
    this.#log = options.log ?? (() => {});
    const nav = navigator as Navigator & { deviceMemory?: number };
    this.#signaling = new SignalingClient({
      url: options.signalUrl,
      token: options.token,
      info: {
        hostId: this.hostId,
        name: options.name,
        userAgent: nav.userAgent,
        cores: nav.hardwareConcurrency,
        memoryGiB: nav.deviceMemory,
      },
    });
    this.#signaling.onwelcome = (m) => {
      this.#log(`signaling: joined as ${m.id}; ${m.peers.length} ingress(es) present`);
      this.onchange?.();
    };
    this.#signaling.onleave = (id) => {
      // The ingress's signaling connection went; its session (if any) lives on until it fails.
      const link = this.#links.get(id);
      if (link && !link.session) this.#drop(id);
    };
    this.#signaling.onsignal = (from, data) => void this.#onSignal(from, data);
    this.#signaling.onapps = (apps) => this.onapps?.(apps);
    this.#signaling.onstatechange = () => this.onchange?.();
  }

  start(): void {
    this.#signaling.start();
  }

  stop(): void {
    this.#signaling.close();
    for (const id of [...this.#links.keys()]) this.#drop(id);
  }

  get signalingConnected(): boolean {
    return this.#signaling.connected;
  }

  /** The ingresses this tab serves right now, and over what. */
  get connections(): Array<{ ingress: string; transport: TransportKind; rttMs: number | undefined }> {
    const out = [];
    for (const [ingress, l] of this.#links) if (l.session && l.transport) out.push({ ingress, transport: l.transport, rttMs: l.session.rttMs });
    return out;
  }

  async #onSignal(from: string, data: unknown): Promise<void> {
    const signal = parseLinkSignal(data);
    if (!signal) return this.#log(`ignored a malformed signal from ${from}`);
    switch (signal.kind) {
      case 'offer':
        return this.#answer(from, signal);
      case 'candidate': {
        const link = this.#links.get(from);
        if (link?.conn === signal.conn && link.answerer && signal.candidate) {
          await link.answerer.addRemoteCandidate(signal.candidate).catch((e: Error) => this.#log(`candidate rejected: ${e.message}`));
        }
        return;
      }
      case 'websocket':
        return this.#dial(from, signal);
      case 'close': {
        const link = this.#links.get(from);
        if (link?.conn === signal.conn && !link.session) this.#drop(from);
        return;
      }
      case 'answer':
        return; // only the ingress receives answers
    }
  }

  async #answer(from: string, signal: Extract<LinkSignal, { kind: 'offer' }>): Promise<void> {
    const link = this.#replace(from, signal.conn);
    try {
      const answerer = await answerOffer({ type: 'offer', sdp: signal.sdp }, { iceServers: this.#opts.iceServers ?? [] });
      if (link.conn !== signal.conn || this.#links.get(from) !== link) return void answerer.pc.close();
      link.answerer = answerer;
      answerer.onLocalCandidate = (candidate) => this.#signaling.send(from, { kind: 'candidate', conn: signal.conn, candidate });
      this.#signaling.send(from, { kind: 'answer', conn: signal.conn, sdp: answerer.answer.sdp ?? '' });
      const channel = await answerer.channel;
      if (this.#links.get(from) !== link) return channel.close('superseded');
      this.#serve(from, link, new Session(channel, this.#sessionOptions()), 'webrtc', () => answerer.pc.close());
    } catch (err) {
      this.#log(`WebRTC with ${from} failed: ${(err as Error).message}`);
    }
  }

  #dial(from: string, signal: Extract<LinkSignal, { kind: 'websocket' }>): void {
    const link = this.#replace(from, signal.conn);
    const url = new URL(signal.url);
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return this.#log(`refused a non-WebSocket URL from ${from}`);
    url.searchParams.set('ticket', signal.ticket);
    const ws = new WebSocket(url);
    ws.addEventListener('open', () => {
      if (this.#links.get(from) !== link) return ws.close();
      this.#serve(from, link, new Session(new BrowserWebSocketChannel(ws, WS_MAX_MESSAGE_SIZE), this.#sessionOptions()), 'websocket');
    });
    ws.addEventListener('error', () => this.#log(`WebSocket to ${url.host} failed`));
  }

  #serve(from: string, link: IngressLink, session: Session, transport: TransportKind, cleanup?: () => void): void {
    link.session = session;
    link.transport = transport;
    link.answerer = null;
    this.#opts.runner.serve(session);
    session.onclose = (err) => {
      cleanup?.();
      this.#log(`session with ${from} closed: ${err.code} ${err.message}`);
      if (this.#links.get(from) === link) this.#links.delete(from);
      this.onchange?.();
    };
    session.ready.then(() => {
      this.#log(`serving ${from} over ${transport}`);
      this.onchange?.();
    }, () => {});
  }

  /** Starts a new connection attempt with an ingress, ending any earlier one. */
  #replace(from: string, conn: string): IngressLink {
    this.#drop(from);
    const link: IngressLink = { conn, answerer: null, session: null, transport: null };
    this.#links.set(from, link);
    return link;
  }

  #drop(from: string): void {
    const link = this.#links.get(from);
    if (!link) return;
    this.#links.delete(from);
    link.answerer?.pc.close();
    link.session?.close();
  }

  #sessionOptions(): SessionOptions {
    return { ...this.#opts.session, role: 'server', agent: `dcdn-host/${this.#opts.name}` };
  }
}
