import { isIPv4, isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { DcdnError } from '../protocol/index.ts';
import { NdcChannel, type NdcDataChannel } from './ndc-channel.ts';
import {
  candidateAddress,
  CHROMIUM_MAX_MESSAGE_SIZE,
  filterCandidateLines,
  parseMaxMessageSize,
  type LinkCandidate,
  type IceServer,
  type Offerer,
  type OffererOptions,
  type PeerConnectionState,
  type SessionDescription,
} from './offerer.ts';

/** What RFC 8841 section 6 says to assume when the remote SDP has no `a=max-message-size`. */
const SDP_DEFAULT_MAX_MESSAGE_SIZE = 65536;

/** An ICE server as node-datachannel takes it (an object, so credentials need no URL escaping). */
export interface NdcIceServer {
  hostname: string;
  port: number;
  username?: string;
  password?: string;
  relayType?: 'TurnUdp' | 'TurnTcp' | 'TurnTls';
}

/** The libdatachannel configuration the offerer uses (node-datachannel's `RtcConfig` subset). */
export interface NdcConfig {
  iceServers: NdcIceServer[];
  /** libjuice binds its UDP socket here; set when every advertised address is loopback. */
  bindAddress?: string;
  enableIceTcp: boolean;
  enableIceUdpMux: boolean;
  /** `offer()` calls setLocalDescription itself, so setupMs counts from there, as on werift. */
  disableAutoNegotiation: boolean;
  iceTransportPolicy: 'all';
  /** Advertised in `a=max-message-size`. */
  maxMessageSize: number;
}

/** The part of node-datachannel's native `PeerConnection` the offerer uses. */
export interface NdcPeerConnection {
  close(): void;
  setLocalDescription(type?: string): void;
  setRemoteDescription(sdp: string, type: string): void;
  localDescription(): { type: string; sdp: string } | null;
  addRemoteCandidate(candidate: string, mid: string): void;
  createDataChannel(label: string, config?: { unordered?: boolean }): NdcDataChannel;
  state(): string;
  gatheringState(): string;
  onLocalCandidate(cb: (candidate: string, mid: string) => void): void;
  onStateChange(cb: (state: string) => void): void;
  onGatheringStateChange(cb: (state: string) => void): void;
  getSelectedCandidatePair(): { local: { address: string; port: number }; remote: { address: string; port: number } } | null;
}

/** The module `import('node-datachannel')` gives, as far as the ingress uses it. */
export interface NdcModule {
  PeerConnection: new (peerName: string, config: NdcConfig) => NdcPeerConnection;
  getLibraryVersion(): string;
}

/** The offerer with its node-datachannel specifics visible: config, channel type, selected pair. */
export interface NdcOfferer extends Omit<Offerer, 'config' | 'opened'> {
  readonly backend: 'node-datachannel';
  /** The libdatachannel configuration in force, for logs and for tests that audit it. */
  readonly config: Readonly<NdcConfig>;
  readonly opened: Promise<NdcChannel>;
  /** The selected candidate pair once connected, for tests that check it stayed on loopback. */
  selectedPair(): { local: string; remote: string } | null;
}

let loading: Promise<NdcModule> | undefined;

/**
 * Loads node-datachannel (an optional dependency with a native addon) once. Rejects with an
 * error that names the dependency and the way out when it is missing or does not load.
 */
export function loadNodeDatachannel(): Promise<NdcModule> {
  // A variable specifier keeps TypeScript from requiring the optional package to typecheck.
  const specifier = 'node-datachannel';
  loading ??= import(specifier).then(
    (m: { default?: NdcModule } & NdcModule) => m.default ?? m,
    (error: unknown) => {
      loading = undefined;
      throw new DcdnError(
        'INGRESS_RTC_UNAVAILABLE',
        "`rtcBackend` 'node-datachannel' needs the optional dependency node-datachannel (a native addon), " +
          `which could not be loaded: ${(error as Error).message}. ` +
          "Install it with `npm install node-datachannel@0.33.4` (no --omit=optional), or use `rtcBackend` 'werift'.",
        { cause: error },
      );
    },
  );
  return loading;
}

/**
 * Builds the libdatachannel configuration. Nothing here may contact a server the operator did
 * not name: libdatachannel has no default STUN server (verified with tcpdump, docs/webrtc.md),
 * so the operator's list is passed as it is. Host candidates are filtered to `advertisedAddresses`
 * by the offerer. When every advertised address is loopback, libjuice's socket is bound to the
 * loopback address (`bindAddress`), so it neither gathers nor can send anywhere else.
 */
export function buildNdcConfig(options: OffererOptions = {}): NdcConfig {
  const advertised = advertisedAddresses(options);
  const config: NdcConfig = {
    iceServers: (options.iceServers ?? []).flatMap(toNdcIceServers),
    enableIceTcp: false,
    // Mux (one port for every peer) needs a fixed port; one ephemeral socket per peer needs none.
    enableIceUdpMux: false,
    disableAutoNegotiation: true,
    iceTransportPolicy: 'all',
    maxMessageSize: options.maxMessageSize ?? CHROMIUM_MAX_MESSAGE_SIZE,
  };
  // libjuice binds one socket: the first IPv4 loopback address, else ::1.
  if (advertised.every(isLoopback)) config.bindAddress = advertised.find((a) => isIPv4(a)) ?? advertised[0]!;
  return config;
}

function advertisedAddresses(options: OffererOptions): string[] {
  const advertised = options.advertisedAddresses ?? ['127.0.0.1'];
  if (advertised.length === 0) throw new TypeError('advertisedAddresses must not be empty');
  for (const address of advertised) {
    if (!isIPv4(address) && !isIPv6(address)) throw new TypeError(`not an IP address: ${address}`);
  }
  return advertised.map((a) => a.toLowerCase());
}

/** W3C `RTCIceServer` to node-datachannel's objects; refuses what libdatachannel cannot use. */
export function toNdcIceServers(server: IceServer): NdcIceServer[] {
  const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
  return urls.map((url) => {
    // RFC 7064 (stun:host[:port]) and RFC 7065 (turn[s]:host[:port][?transport=udp|tcp]).
    const match = /^(stun|turns?):(\[[0-9a-f:.]+\]|[^:?[\]]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/i.exec(url.trim());
    if (!match) throw new TypeError(`not a STUN or TURN URL libdatachannel can use: ${url}`);
    const [, scheme, host, port, transport] = match as unknown as [string, string, string, string | undefined, string | undefined];
    const hostname = host.replace(/^\[|\]$/g, '');
    const kind = scheme.toLowerCase();
    if (kind === 'stun') return { hostname, port: Number(port ?? 3478) };
    if (server.username === undefined || server.credential === undefined) throw new TypeError(`TURN server ${url} needs a username and a credential`);
    const relayType = kind === 'turns' ? 'TurnTls' : transport?.toLowerCase() === 'tcp' ? 'TurnTcp' : 'TurnUdp';
    return { hostname, port: Number(port ?? (kind === 'turns' ? 5349 : 3478)), username: server.username, password: server.credential, relayType };
  });
}

/**
 * Creates the ingress end of one tab's connection on node-datachannel (libdatachannel, native):
 * the offerer, with one reliable, ordered data channel. Same contract as `createOfferer()` in
 * rtc-peer.ts, except that our candidates are trickled after the answer (see `offer()`); the
 * channel is an {@link NdcChannel}. `ndc` replaces the loaded module (tests use a fake).
 *
 * @example
 * ```ts
 * const peer = await createNdcPeer();
 * const offer = await peer.offer();
 * await peer.acceptAnswer(await signaling.exchange(offer));
 * const channel = await peer.opened; // channel.backend === 'node-datachannel'
 * ```
 */
export async function createNdcPeer(options: OffererOptions = {}, ndc?: NdcModule): Promise<NdcOfferer> {
  const config = buildNdcConfig(options); // validate before loading the native module
  return new NdcPeer(ndc ?? (await loadNodeDatachannel()), config, options);
}

/** The `OffererFactory` entry for `--rtc node-datachannel` (see rtc-backend.ts). */
export async function createNdcOfferer(options: OffererOptions): Promise<Offerer> {
  // Offerer still names werift's config and channel types; the ingress uses neither beyond the
  // Channel interface, which NdcChannel implements.
  return createNdcPeer(options);
}

class NdcPeer implements NdcOfferer {
  readonly backend = 'node-datachannel' as const;
  readonly config: Readonly<NdcConfig>;
  readonly opened: Promise<NdcChannel>;
  onLocalCandidate: ((candidate: LinkCandidate | null) => void) | null = null;
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null = null;

  readonly #pc: NdcPeerConnection;
  readonly #dc: NdcDataChannel;
  readonly #advertised: string[];
  readonly #loopbackOnly: boolean;
  readonly #stateListeners = new Set<(state: string) => void>();
  /** Every local candidate line handed out or held, so none goes out twice. */
  readonly #seen = new Set<string>();
  /** Local candidates kept back until the answer is applied (see `offer()`). */
  #held: string[] = [];
  #gatheringComplete = false;
  /** Remote candidates that arrived before the answer: libdatachannel refuses them until then. */
  #pendingRemote: LinkCandidate[] = [];
  #answered = false;
  #offered = false;
  #mid = '0';
  #state: PeerConnectionState = 'new';
  #remoteMaxMessageSize: number | null = null;
  #offerStartedAt: number | null = null;
  #setupMs: number | undefined;

  constructor(ndc: NdcModule, config: NdcConfig, options: OffererOptions) {
    this.config = config;
    this.#advertised = advertisedAddresses(options);
    this.#loopbackOnly = this.#advertised.every(isLoopback);
    try {
      this.#pc = new ndc.PeerConnection('dcdn-ingress', { ...config, iceServers: config.iceServers.map((s) => ({ ...s })) });
    } catch (error) {
      throw new Error(`node-datachannel refused the configuration: ${(error as Error).message}`, { cause: error });
    }
    this.#pc.onStateChange((native) => {
      if (this.#state === 'closed') return;
      const state = toConnectionState(native);
      this.#state = state;
      this.onconnectionstatechange?.(state);
      // A listener may close the connection ('failed' closes the channel, which closes us).
      for (const listener of [...this.#stateListeners]) listener(state);
    });
    this.#pc.onGatheringStateChange((state) => {
      if (state !== 'complete' || this.#gatheringComplete) return;
      this.#gatheringComplete = true;
      if (this.#answered) this.onLocalCandidate?.(null);
    });
    this.#pc.onLocalCandidate((candidate) => this.#localCandidates([candidate.startsWith('a=') ? candidate : `a=${candidate}`]));
    // Reliable and ordered are libdatachannel's defaults (WEBRTC-NOTES 7: nothing else is used).
    this.#dc = this.#pc.createDataChannel(options.label ?? 'dcdn', {});

    this.opened = new Promise<NdcChannel>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        settled = true;
        stop();
      };
      const stop = this.#onState((state) => {
        if (settled || (state !== 'failed' && state !== 'closed')) return;
        settle();
        reject(new Error(`peer connection ${state} before the data channel opened`));
      });
      this.#dc.onOpen(() => {
        if (settled) return;
        settle();
        if (this.#offerStartedAt !== null) this.#setupMs = performance.now() - this.#offerStartedAt;
        const peer = { close: () => this.#closeNow(), onState: (listener: (state: string) => void) => this.#onState(listener) };
        resolve(new NdcChannel(this.#dc, { maxMessageSize: this.#negotiatedMaxMessageSize(), peer }));
      });
      this.#dc.onError((err) => {
        if (settled) return;
        settle();
        reject(new Error(`data channel error before it opened: ${err}`));
      });
      this.#dc.onClosed(() => {
        if (settled) return;
        settle();
        reject(new Error('data channel closed before it opened'));
      });
    });
    // Callers that only ever await later must not trip an unhandled rejection meanwhile.
    this.opened.catch(() => undefined);
  }

  get connectionState(): PeerConnectionState {
    return this.#state;
  }

  get setupMs(): number | undefined {
    return this.#setupMs;
  }

  /**
   * Creates the offer. Unlike werift's, it carries no candidate: ours are trickled through
   * `onLocalCandidate` once `acceptAnswer()` has applied the answer. libdatachannel 0.24.5 hands
   * the answer's ICE credentials to libjuice before it stores the answer's DTLS fingerprint; a
   * tab that already knows our address has its checks waiting, ICE connects inside that window,
   * and the tab's certificate is then checked against no fingerprint: "DTLS alert: unknown CA",
   * connection failed (seen in about 1 connection in 30 on a loaded machine). A tab that learns
   * our address only after the answer is applied cannot get there first. Host candidates are
   * gathered synchronously, so holding them back costs one signaling hop.
   */
  async offer(): Promise<SessionDescription> {
    this.#offerStartedAt = performance.now();
    this.#pc.setLocalDescription('offer');
    const description = this.#pc.localDescription();
    if (!description) throw new Error('node-datachannel produced no local description');
    this.#mid = /^a=mid:(\S+)/m.exec(description.sdp)?.[1] ?? '0';
    this.#offered = true;
    const lines = description.sdp.split(/\r?\n/);
    this.#localCandidates(lines.filter((line) => line.startsWith('a=candidate:')));
    if (this.#pc.gatheringState() === 'complete') this.#gatheringComplete = true;
    return { type: 'offer', sdp: withoutCandidates(description.sdp) };
  }

  async acceptAnswer(description: SessionDescription): Promise<void> {
    if (description.type !== 'answer') throw new TypeError(`expected an answer, got ${description.type}`);
    if (this.#answered) throw new Error('an answer was already applied');
    this.#remoteMaxMessageSize = parseMaxMessageSize(description.sdp);
    const sdp = filterCandidateLines(description.sdp, (line) => this.#isAcceptableRemote(line));
    this.#pc.setRemoteDescription(sdp, 'answer');
    this.#answered = true;
    for (const candidate of this.#pendingRemote.splice(0)) this.#addRemote(candidate);
    // Now the tab may learn where to send its checks.
    for (const line of this.#held.splice(0)) this.#emit(line);
    if (this.#gatheringComplete) this.onLocalCandidate?.(null);
  }

  async addRemoteCandidate(candidate: LinkCandidate | null): Promise<void> {
    if (candidate === null || candidate.candidate === '') return; // end-of-candidates: nothing to do
    if (!this.#isAcceptableRemote(candidate.candidate)) return;
    if (this.#answered) this.#addRemote(candidate);
    else this.#pendingRemote.push(candidate);
  }

  selectedPair(): { local: string; remote: string } | null {
    if (this.#state === 'closed') return null;
    const pair = this.#pc.getSelectedCandidatePair();
    return pair ? { local: pair.local.address, remote: pair.remote.address } : null;
  }

  async close(): Promise<void> {
    this.#closeNow();
  }

  #closeNow(): void {
    if (this.#state === 'closed') return;
    // libdatachannel reports 'closed' through a later task; report it now, once, as werift does.
    this.#state = 'closed';
    for (const listener of [...this.#stateListeners]) listener('closed');
    this.onconnectionstatechange?.('closed');
    this.#stateListeners.clear();
    // Closing the channel explicitly matters: node-datachannel releases the channel's callbacks
    // (which keep Node's event loop alive) only on its close event, and closing the connection
    // alone never sends one to a channel that did not open.
    this.#dc.close();
    this.#pc.close();
  }

  #onState(listener: (state: string) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  #addRemote(candidate: LinkCandidate): void {
    if (this.#state === 'closed') return;
    this.#pc.addRemoteCandidate(candidate.candidate.replace(/^a=/, ''), candidate.sdpMid ?? this.#mid);
  }

  /** Takes gathered candidate lines (from the SDP or trickled) and holds or emits the allowed ones. */
  #localCandidates(lines: string[]): void {
    // Before offer(), libdatachannel has gathered nothing; the SDP read in offer() has it all.
    if (!this.#offered || this.#state === 'closed') return;
    for (const line of this.#advertisedLines(lines)) {
      if (this.#seen.has(line)) continue;
      this.#seen.add(line);
      if (this.#answered) this.#emit(line);
      else this.#held.push(line);
    }
  }

  #emit(line: string): void {
    this.onLocalCandidate?.({ candidate: line.slice(2), sdpMid: this.#mid, sdpMLineIndex: 0 });
  }

  /**
   * Keeps only candidates for advertised addresses. An advertised address that libjuice did not
   * gather (a 1:1 NAT mapping, not on any interface) gets a copy of a gathered host candidate of
   * its family, with the same port, as werift's `iceAdditionalHostAddresses` does. In loopback
   * mode nothing is synthesised: the one bound address is the only one that can answer.
   */
  #advertisedLines(lines: string[]): string[] {
    const kept = lines.filter((line) => this.#advertised.includes(candidateAddress(line) ?? ''));
    if (this.#loopbackOnly) return kept;
    const hosts = lines.filter((line) => / typ host\b/.test(line));
    const extra: string[] = [];
    for (const [index, address] of this.#advertised.entries()) {
      if (lines.some((line) => candidateAddress(line) === address)) continue;
      const template = hosts.find((line) => (isIPv4(candidateAddress(line) ?? '') ? isIPv4(address) : isIPv6(address)));
      if (!template) continue;
      const fields = template.split(' ');
      fields[0] = `a=candidate:dcdn${index}`; // a foundation of its own: the base address differs
      fields[4] = address;
      extra.push(fields.join(' '));
    }
    return [...kept, ...extra];
  }

  #negotiatedMaxMessageSize(): number {
    const ours = this.config.maxMessageSize === 0 ? Number.POSITIVE_INFINITY : this.config.maxMessageSize;
    const remote = this.#remoteMaxMessageSize ?? SDP_DEFAULT_MAX_MESSAGE_SIZE;
    const theirs = remote === 0 ? Number.POSITIVE_INFINITY : remote;
    // libdatachannel enforces its own view of the same negotiation on send: never exceed it.
    const native = this.#dc.maxMessageSize();
    const size = Math.min(ours, theirs, native > 0 ? native : Number.POSITIVE_INFINITY);
    return Number.isFinite(size) ? size : CHROMIUM_MAX_MESSAGE_SIZE;
  }

  #isAcceptableRemote(candidateLine: string): boolean {
    const address = candidateAddress(candidateLine);
    // Only IP literals: a name would be resolved by libdatachannel through the system resolver,
    // and `.local` (mDNS) names are what browsers hide local addresses behind (WEBRTC-NOTES 4).
    // The connection forms through peer-reflexive candidates instead.
    if (address === undefined || (!isIPv4(address) && !isIPv6(address))) return false;
    return !this.#loopbackOnly || isLoopback(address);
  }
}

/**
 * The offer without candidates or end-of-candidates, and with the "no candidate yet" default
 * address of trickle ICE (RFC 8840 section 4.1.1: port 9, `c=IN IP4 0.0.0.0`), which also keeps
 * interface addresses we may not advertise out of it.
 */
function withoutCandidates(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  return filterCandidateLines(sdp, () => false)
    .split(eol)
    .filter((line) => line !== 'a=end-of-candidates')
    .map((line) => (line.startsWith('c=IN ') ? 'c=IN IP4 0.0.0.0' : line.startsWith('m=') ? line.replace(/^(m=\S+) \d+/, '$1 9') : line))
    .join(eol);
}

function toConnectionState(state: string): PeerConnectionState {
  switch (state) {
    case 'new':
    case 'connecting':
    case 'connected':
    case 'disconnected':
    case 'failed':
    case 'closed':
      return state;
    default:
      return 'connecting';
  }
}

function isLoopback(address: string): boolean {
  return (isIPv4(address) && address.startsWith('127.')) || address === '::1';
}
