import { parseLinkSignal, Session, SignalingClient, WS_MAX_MESSAGE_SIZE, type AppStatus, type BackoffOptions, type CheckMessage, type LinkSignal, type SessionOptions, type TransportKind } from '../protocol/index.ts';
import { randomId } from './random-id.ts';
import type { AppRef } from './app-registry.ts';
import type { AppRunner } from './app-runner.ts';
import { answerOffer, type Answerer } from './rtc-answerer.ts';
import { BrowserWebSocketChannel } from './ws-channel.ts';

export interface HostAgentOptions {
  /** `ws(s)://signal/v1/signal`. */
  signalUrl: string;
  token: string;
  /** Shown to operators (`dcdn-host` header, health). */
  name: string;
  runner: AppRunner;
  /** Operator-configured STUN/TURN, used when signaling hands out none (its welcome's win); default none. */
  iceServers?: RTCIceServer[];
  /** The tab's stable id (default: a fresh one); the join page keeps one per tab across reloads. */
  hostId?: string;
  /**
   * `relay` makes every connection go through TURN (to test it). Default: `relay` when the page
   * URL has `relay=1` (see {@link iceTransportPolicyFromUrl}), else 'all'.
   */
  iceTransportPolicy?: RTCIceTransportPolicy;
  session?: Partial<Omit<SessionOptions, 'role'>>;
  /** Signaling reconnect back-off. Default {@link HOST_RECONNECT_BACKOFF}. */
  signalingBackoff?: Partial<BackoffOptions>;
  /** Chrome's peer-connection budget. Default {@link PC_BUDGET}. */
  pcBudget?: Partial<PcBudget>;
  log?: (line: string) => void;
}

/**
 * Hosts reconnect to signaling after 0-1 s, then back off: a signaling node's thousands of tabs
 * spread their reconnects over a second instead of a storm (SCALE-OUT §3.4.1). Ingresses keep
 * the client's default 250 ms.
 */
export const HOST_RECONNECT_BACKOFF: Partial<BackoffOptions> = { initialMs: 1000, jitter: 1 };

/**
 * Chrome refuses new RTCPeerConnections past about 500 per tab over the tab's life (closed ones
 * count until the page is reloaded), so the tab keeps count.
 */
export interface PcBudget {
  /** Peer connections created after which an offer is answered with `close` (reason `pc-budget`), so the ingress falls back to WebSocket at once. */
  refuseAt: number;
  /** Offers (created or refused) after which the tab asks to be reloaded when idle ({@link HostAgent.onpcexhausted}). */
  reloadAt: number;
}

export const PC_BUDGET: PcBudget = { refuseAt: 400, reloadAt: 450 };
/** How often a tab past `reloadAt` looks for an idle moment to reload. */
export const PC_RELOAD_CHECK_MS = 1000;

/** One end of an ICE candidate pair, as `RTCPeerConnection.getStats()` reports it. */
export interface CandidateSummary {
  /** `host`, `srflx`, `prflx` or `relay`. */
  type: string;
  address: string;
  port: number;
  protocol: string;
}

/** `relay=1` in the host page's query forces relay-only ICE, so operators can test their TURN server. */
export function iceTransportPolicyFromUrl(search: string): RTCIceTransportPolicy | undefined {
  return new URLSearchParams(search).get('relay') === '1' ? 'relay' : undefined;
}

/** One connection to one ingress. */
interface IngressLink {
  conn: string;
  answerer: Answerer | null;
  /** The WebRTC connection, once answered (kept for stats after the answerer is done). */
  pc: RTCPeerConnection | null;
  session: Session | null;
  transport: TransportKind | null;
}

/**
 * The host side of dcdn in a tab: joins signaling, answers each ingress's offer (or dials its
 * WebSocket endpoint when told to), and serves every session with the app runner.
 */
export class HostAgent {
  /**
   * Stable for the life of the tab, so ingresses recognise it across signaling reconnects; a
   * fresh one only when signaling says another live tab registered the same id
   * (`SIG_DUPLICATE_PEER`, a "duplicate tab" copies sessionStorage): see {@link onhostid}.
   */
  get hostId(): string {
    return this.#hostId;
  }
  #hostId: string;
  readonly #opts: HostAgentOptions;
  readonly #pcBudget: PcBudget;
  /** Peer connections this tab has created, and offers it has received (created or refused). */
  #pcCreated = 0;
  #offers = 0;
  #reloadTimer: ReturnType<typeof setInterval> | null = null;
  readonly #signaling: SignalingClient;
  readonly #links = new Map<string, IngressLink>();
  readonly #log: (line: string) => void;
  /** What hello tells signaling about this tab; capabilities are added by start(). */
  readonly #info: Record<string, unknown>;
  #stopped = false;
  readonly #iceTransportPolicy: RTCIceTransportPolicy;
  /** What signaling's welcome (or a later refresh) handed out; null: it sent none. */
  #signaledIce: RTCIceServer[] | null = null;
  /**
   * This tab's id in signaling (from its welcome): the ID `dcdn hosts list` shows, and what an
   * operator drains or bans it by. Null until signaling welcomed it; a new one per connection.
   */
  peerId: string | null = null;
  onchange: (() => void) | null = null;
  /** The deployed apps' active versions, as signaling announces them. */
  onapps: ((apps: AppRef[]) => void) | null = null;
  /** Signaling asks the tab to load a candidate version (a deploy's check); answer with {@link checked}. */
  oncheck: ((check: CheckMessage) => void) | null = null;
  /**
   * The tab took a fresh host id after `SIG_DUPLICATE_PEER` (another live tab holds the old one);
   * the join page stores it in place of the old. The agent reconnects with it by itself.
   */
  onhostid: ((hostId: string) => void) | null = null;
  /**
   * The tab has used up its peer-connection budget (`pcBudget.reloadAt` offers) and serves
   * nothing right now: the host page reloads itself (Chrome's count starts again). Unset: the
   * tab stays, serving new ingresses over WebSocket.
   */
  onpcexhausted: (() => void) | null = null;

  constructor(options: HostAgentOptions) {
    this.#opts = options;
    this.#hostId = options.hostId ?? randomId();
    this.#pcBudget = { ...PC_BUDGET, ...options.pcBudget };
    this.#log = options.log ?? (() => {});
    this.#iceTransportPolicy = options.iceTransportPolicy ?? iceTransportPolicyFromUrl(globalThis.location?.search ?? '') ?? 'all';
    const nav = navigator as Navigator & { deviceMemory?: number };
    this.#info = {
      hostId: this.hostId,
      name: options.name,
      userAgent: nav.userAgent,
      cores: nav.hardwareConcurrency,
      memoryGiB: nav.deviceMemory,
    };
    this.#signaling = new SignalingClient({ url: options.signalUrl, token: options.token, info: this.#info, backoff: { ...HOST_RECONNECT_BACKOFF, ...options.signalingBackoff } });
    this.#signaling.onerror = (code, message) => {
      if (code === 'SIG_DUPLICATE_PEER') this.#renewHostId(message);
    };
    this.#signaling.onwelcome = (m) => {
      this.#signaledIce = m.iceServers ?? null;
      this.peerId = m.id;
      this.#log(`signaling: joined as ${m.id}; ${m.peers.length} ingress(es) present; ICE: ${this.#iceSummary()}`);
      this.onchange?.();
    };
    this.#signaling.onpeers = (peers) => {
      // The whole list, after a chunked welcome or a resync: attempts with ingresses not in it are over.
      const present = new Set(peers.map((p) => p.id));
      for (const [id, link] of [...this.#links]) if (!present.has(id) && !link.session) this.#drop(id);
      this.#log(`signaling: ${peers.length} ingress(es) present`);
      this.onchange?.();
    };
    this.#signaling.onleave = (id) => {
      // The ingress's signaling connection went; its session (if any) lives on until it fails.
      const link = this.#links.get(id);
      if (link && !link.session) this.#drop(id);
    };
    this.#signaling.onsignal = (from, data) => void this.#onSignal(from, data);
    this.#signaling.onapps = (apps) => this.onapps?.(apps);
    this.#signaling.oncheck = (check) => this.oncheck?.(check);
    this.#signaling.onice = (servers) => {
      this.#signaledIce = servers;
    };
    this.#signaling.onstatechange = () => this.onchange?.();
  }

  /** Finds out what the browser can do (reported in hello), then joins signaling. */
  start(): void {
    void detectCapabilities().then((caps) => {
      this.#info['capabilities'] = caps;
      if (!this.#stopped) this.#signaling.start();
    });
  }

  stop(): void {
    this.#stopped = true;
    if (this.#reloadTimer !== null) clearInterval(this.#reloadTimer);
    this.#reloadTimer = null;
    this.#signaling.close();
    for (const id of [...this.#links.keys()]) this.#drop(id);
  }

  /** Tells signaling what this tab has loaded (operators see it in `dcdn apps`). */
  reportApps(apps: AppStatus[]): void {
    this.#signaling.reportStatus(apps);
  }

  /** Reports how loading a candidate went (see {@link oncheck}). */
  checked(id: string, ok: boolean, error: string, ms: number): void {
    this.#signaling.checked(id, ok, error, ms);
  }

  get signalingConnected(): boolean {
    return this.#signaling.connected;
  }

  /** Peer connections created by this tab so far (Chrome's per-tab budget counts them all). */
  get peerConnectionsCreated(): number {
    return this.#pcCreated;
  }

  /** The ingresses this tab serves right now, and over what. */
  get connections(): Array<{ ingress: string; transport: TransportKind; rttMs: number | undefined }> {
    const out = [];
    for (const [ingress, l] of this.#links) if (l.session && l.transport) out.push({ ingress, transport: l.transport, rttMs: l.session.rttMs });
    return out;
  }

  /**
   * The session KV calls go out on: the oldest one that is open. With several ingresses they
   * must share a KV store (Redis) for the data to be the same whichever serves (docs/kv.md).
   */
  kvSession(): Session | null {
    for (const l of this.#links.values()) if (l.session?.isOpen) return l.session;
    return null;
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
    this.#offers += 1;
    if (this.#offers > this.#pcBudget.reloadAt) this.#watchForReload();
    if (this.#pcCreated >= this.#pcBudget.refuseAt) {
      // Chrome would soon refuse to create one at all: send the ingress to WebSocket now.
      this.#log(`refused a WebRTC offer from ${from}: ${this.#pcCreated} peer connections used (budget ${this.#pcBudget.refuseAt})`);
      this.#signaling.send(from, { kind: 'close', conn: signal.conn, reason: 'pc-budget' });
      return;
    }
    this.#pcCreated += 1;
    try {
      const answerer = await answerOffer({ type: 'offer', sdp: signal.sdp }, { iceServers: this.#iceServers(), iceTransportPolicy: this.#iceTransportPolicy });
      if (link.conn !== signal.conn || this.#links.get(from) !== link) return void answerer.pc.close();
      link.answerer = answerer;
      link.pc = answerer.pc;
      answerer.onLocalCandidate = (candidate) => this.#signaling.send(from, { kind: 'candidate', conn: signal.conn, candidate });
      this.#signaling.send(from, { kind: 'answer', conn: signal.conn, sdp: answerer.answer.sdp ?? '' });
      const channel = await answerer.channel;
      if (this.#links.get(from) !== link) return channel.close('superseded');
      this.#serve(from, link, new Session(channel, this.#sessionOptions()), 'webrtc', () => answerer.pc.close());
    } catch (err) {
      this.#log(`WebRTC with ${from} failed: ${(err as Error).message}`);
      // Tell the ingress now, so it offers the WebSocket fallback without waiting out its timer.
      if (this.#links.get(from) === link && !link.session) this.#signaling.send(from, { kind: 'close', conn: signal.conn, reason: `webrtc failed: ${(err as Error).message}`.slice(0, 200) });
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
    const link: IngressLink = { conn, answerer: null, pc: null, session: null, transport: null };
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

  /**
   * For each ingress served over WebRTC, the ICE candidate pair in use (W3C webrtc-stats: the
   * transport's `selectedCandidatePairId`). A `relay` local candidate means this tab's traffic
   * goes through TURN.
   */
  async selectedCandidatePairs(): Promise<Array<{ ingress: string; local: CandidateSummary; remote: CandidateSummary }>> {
    const out = [];
    for (const [ingress, link] of this.#links) {
      if (!link.pc || link.transport !== 'webrtc') continue;
      const stats = new Map<string, Record<string, unknown>>();
      (await link.pc.getStats()).forEach((s: Record<string, unknown>) => stats.set(String(s.id), s));
      const transport = [...stats.values()].find((s) => s.type === 'transport');
      const pair = stats.get(String(transport?.selectedCandidatePairId));
      const local = stats.get(String(pair?.localCandidateId));
      const remote = stats.get(String(pair?.remoteCandidateId));
      if (local && remote) out.push({ ingress, local: summarise(local), remote: summarise(remote) });
    }
    return out;
  }

  /**
   * Another live tab holds this host id: take a fresh one, so both serve as distinct hosts rather
   * than push each other out at the reconnect rate. Signaling closed this connection; the client
   * reconnects with the new id in hello.
   */
  #renewHostId(message: string): void {
    const old = this.#hostId;
    this.#hostId = randomId();
    this.#info['hostId'] = this.#hostId;
    this.#log(`signaling: duplicate peer id ${old.slice(0, 8)} (${message}); reconnecting as ${this.#hostId.slice(0, 8)}`);
    this.onhostid?.(this.#hostId);
  }

  /** Past the reload mark: ask for a reload at the first moment the tab serves no request. */
  #watchForReload(): void {
    if (this.#reloadTimer !== null || !this.onpcexhausted) return;
    const check = () => {
      if (this.#opts.runner.stats.inFlight > 0) return;
      if (this.#reloadTimer !== null) clearInterval(this.#reloadTimer);
      this.#log(`peer-connection budget used up (${this.#offers} offers): reloading`);
      this.onpcexhausted?.();
    };
    this.#reloadTimer = setInterval(check, PC_RELOAD_CHECK_MS);
    check();
  }

  /** Signaling's servers when it sent any, else this agent's own. */
  #iceServers(): RTCIceServer[] {
    return this.#signaledIce ?? this.#opts.iceServers ?? [];
  }

  #iceSummary(): string {
    const urls = this.#iceServers().flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    const relay = this.#iceTransportPolicy === 'relay';
    if (relay && !urls.some((u) => /^turns?:/i.test(u))) return 'relay only, but no TURN server: WebRTC cannot connect (ingresses fall back to WebSocket)';
    return `${urls.length > 0 ? urls.join(' ') : 'no STUN/TURN servers'}${relay ? ' (relay only)' : ''}`;
  }

  #sessionOptions(): SessionOptions {
    return { ...this.#opts.session, role: 'server', agent: `dcdn-host/${this.#opts.name}` };
  }
}

function summarise(candidate: Record<string, unknown>): CandidateSummary {
  return {
    type: String(candidate.candidateType),
    address: String(candidate.address ?? candidate.ip ?? ''),
    port: Number(candidate.port),
    protocol: String(candidate.protocol),
  };
}

/** How long capability detection may take before the tab joins without the slow ones. */
const DETECT_TIMEOUT_MS = 2000;

/**
 * What this browser offers apps that may require it (`dcdn deploy --require webgpu`): WebGPU
 * when an adapter is actually available, not merely the API. Self-reported: signaling and the
 * ingress cannot check it.
 */
export async function detectCapabilities(): Promise<string[]> {
  const caps: string[] = [];
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (gpu) {
    const adapter = await Promise.race([gpu.requestAdapter().catch(() => null), new Promise((r) => setTimeout(() => r(null), DETECT_TIMEOUT_MS))]);
    if (adapter) caps.push('webgpu');
  }
  return caps;
}
