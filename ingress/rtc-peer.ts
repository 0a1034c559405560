import { isIPv4, isIPv6 } from 'node:net';
import type { Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { RTCPeerConnection, type RTCDataChannel, type RTCPeerConnectionConfig } from 'werift';
import { WeriftChannel } from './werift-channel.ts';
import {
  candidateAddress,
  CHROMIUM_MAX_MESSAGE_SIZE,
  filterCandidateLines,
  parseMaxMessageSize,
  SDP_DEFAULT_MAX_MESSAGE_SIZE,
  UDP_RECEIVE_BUFFER_BYTES,
  type LinkCandidate,
  type IceServer,
  type Offerer,
  type OffererOptions,
  type PeerConnectionState,
  type SessionDescription,
} from './offerer.ts';

export type { LinkCandidate, IceServer, Offerer, OffererOptions, PeerConnectionState, SessionDescription } from './offerer.ts';
export { candidateAddress, CHROMIUM_MAX_MESSAGE_SIZE, filterCandidateLines, parseMaxMessageSize } from './offerer.ts';

/**
 * Builds the werift configuration. Nothing here may contact a server the operator did not name
 * (WEBRTC-NOTES 6): werift queries stun.l.google.com:19302 whenever it has no STUN server, even
 * with `iceServers: []`, unless it runs ICE-lite. So:
 * - no servers configured: ICE-lite (RFC 8445 section 2.5). A lite agent never sends checks nor
 *   gathers server-reflexive candidates; the browser, always a full agent, does the checks.
 * - TURN without STUN: the TURN server doubles as the STUN server (every TURN server is one,
 *   RFC 8656 section 1), so werift's default never applies.
 * Host candidates come only from `advertisedAddresses` (`iceUseIpv4/6: false` turns off
 * interface enumeration). When every advertised address is loopback, sockets are bound to
 * loopback and STUN from any other source is ignored, so no packet can leave 127.0.0.0/8.
 */
export function buildWeriftConfig(options: OffererOptions = {}): RTCPeerConnectionConfig {
  const advertised = options.advertisedAddresses ?? ['127.0.0.1'];
  if (advertised.length === 0) throw new TypeError('advertisedAddresses must not be empty');
  for (const address of advertised) {
    if (!isIPv4(address) && !isIPv6(address)) throw new TypeError(`not an IP address: ${address}`);
  }
  const iceServers = withExplicitStun(options.iceServers ?? []);
  const config: RTCPeerConnectionConfig = {
    iceServers,
    iceLite: iceServers.length === 0,
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceUseTcp: false,
    iceAdditionalHostAddresses: [...advertised],
    maxMessageSize: options.maxMessageSize ?? CHROMIUM_MAX_MESSAGE_SIZE,
  };
  if (advertised.every(isLoopback)) {
    const v4 = advertised.find((a) => isIPv4(a));
    const v6 = advertised.find((a) => isIPv6(a));
    config.iceInterfaceAddresses = { ...(v4 ? { udp4: v4 } : {}), ...(v6 ? { udp6: v6 } : {}) };
    config.iceFilterStunResponse = (_message, [address]) => isLoopback(address);
    config.iceFilterCandidatePair = (pair) => isLoopback(pair.remoteCandidate.host);
  }
  return config;
}

function withExplicitStun(servers: IceServer[]): IceServer[] {
  const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
  // werift skips URLs it cannot parse; a list of only those would bring back its Google default.
  const unusable = urls.filter((u) => !/^(stuns?|turns?):./i.test(u.trim()));
  if (unusable.length > 0) throw new TypeError(`not a STUN or TURN URL: ${unusable.join(', ')}`);
  if (urls.some((u) => /^stuns?:/i.test(u))) return servers;
  const turn = urls.map((u) => /^turns?:([^?]+)/i.exec(u.trim())).find((m) => m !== null);
  if (!turn?.[1]) return servers;
  // `turns:` listens with TLS; plain STUN over UDP is on the standard port of the same host.
  const [, host, port] = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(turn[1]) ?? [];
  const stunPort = /^turn:/i.test(turn[0]) && port ? port : '3478';
  return [{ urls: `stun:${host}:${stunPort}` }, ...servers];
}

/**
 * Creates the ingress end of one tab's connection: werift as offerer with one reliable,
 * ordered data channel.
 *
 * @example
 * ```ts
 * const peer = createOfferer();
 * const offer = await peer.offer();
 * const answer = await signaling.exchange(offer);
 * await peer.acceptAnswer(answer);
 * const channel = await peer.opened;
 * ```
 */
export function createOfferer(options: OffererOptions = {}): WeriftOfferer {
  return new WeriftOfferer(options);
}

/** The werift offerer, with werift's own config and channel types. */
export class WeriftOfferer implements Offerer {
  readonly backend = 'werift' as const;
  readonly config: Readonly<RTCPeerConnectionConfig>;
  readonly opened: Promise<WeriftChannel>;
  onLocalCandidate: ((candidate: LinkCandidate | null) => void) | null = null;
  onconnectionstatechange: ((state: PeerConnectionState) => void) | null = null;

  readonly #pc: RTCPeerConnection;
  readonly #dc: RTCDataChannel;
  readonly #allowed: Set<string>;
  readonly #loopbackOnly: boolean;
  readonly #localMaxMessageSize: number;
  readonly #udpReceiveBufferBytes: number;
  #remoteMaxMessageSize: number | null = null;
  #offerStartedAt: number | null = null;
  #setupMs: number | undefined;
  #offered = false;

  constructor(options: OffererOptions) {
    this.config = buildWeriftConfig(options);
    this.#allowed = new Set(this.config.iceAdditionalHostAddresses);
    this.#loopbackOnly = [...this.#allowed].every(isLoopback);
    this.#localMaxMessageSize = this.config.maxMessageSize ?? CHROMIUM_MAX_MESSAGE_SIZE;
    this.#udpReceiveBufferBytes = options.udpReceiveBufferBytes ?? UDP_RECEIVE_BUFFER_BYTES;
    if (!Number.isInteger(this.#udpReceiveBufferBytes) || this.#udpReceiveBufferBytes < 1) {
      throw new TypeError(`udpReceiveBufferBytes must be a positive integer, got ${this.#udpReceiveBufferBytes}`);
    }
    this.#pc = new RTCPeerConnection(this.config);
    this.#dc = this.#pc.createDataChannel(options.label ?? 'dcdn', { ordered: true });

    this.#pc.connectionStateChange.subscribe((state) => this.onconnectionstatechange?.(state));
    this.#pc.onIceCandidate.subscribe((candidate) => {
      // Before offer() resolves, candidates are in the offer SDP itself.
      if (!this.#offered) return;
      if (!candidate) this.onLocalCandidate?.(null);
      else if (this.#isAllowedLocal(candidate.candidate)) {
        this.onLocalCandidate?.({ candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? null, sdpMLineIndex: candidate.sdpMLineIndex ?? null });
      }
    });

    this.opened = new Promise<WeriftChannel>((resolve, reject) => {
      const open = this.#dc.stateChanged.subscribe((state) => {
        if (state !== 'open') return;
        open.unSubscribe();
        failed.unSubscribe();
        if (this.#offerStartedAt !== null) this.#setupMs = performance.now() - this.#offerStartedAt;
        // The channel is the connection's only purpose: it closes the connection when it closes.
        resolve(new WeriftChannel(this.#dc, { maxMessageSize: this.#negotiatedMaxMessageSize(), pc: this.#pc }));
      });
      const failed = this.#pc.connectionStateChange.subscribe((state) => {
        if (state !== 'failed' && state !== 'closed') return;
        open.unSubscribe();
        failed.unSubscribe();
        reject(new Error(`peer connection ${state} before the data channel opened`));
      });
    });
    // Callers that only ever await later must not trip an unhandled rejection meanwhile.
    this.opened.catch(() => undefined);
  }

  get connectionState(): PeerConnectionState {
    return this.#pc.connectionState;
  }

  get setupMs(): number | undefined {
    return this.#setupMs;
  }

  async offer(): Promise<SessionDescription> {
    this.#offerStartedAt = performance.now();
    const offer = await this.#pc.createOffer();
    // werift's setLocalDescription waits for gathering to finish: host-only gathering (no STUN)
    // is a socket bind per address, so this is quick.
    await this.#pc.setLocalDescription(offer);
    // Gathering has bound the sockets by now, before any peer can send to them.
    for (const socket of this.#udpSockets()) {
      try {
        socket.setRecvBufferSize(this.#udpReceiveBufferBytes);
      } catch {
        // the kernel refused (or the socket is gone): the default stays; udpReceiveBuffers shows it
      }
    }
    const sdp = this.#pc.localDescription?.sdp ?? offer.sdp;
    this.#offered = true;
    return { type: 'offer', sdp: filterCandidateLines(sdp, (line) => this.#isAllowedLocal(line)) };
  }

  /**
   * The kernel's receive buffer of each of werift's UDP sockets (bytes, as Linux reports it:
   * twice what was granted), read now: for logs, and for tests that check the setting took.
   */
  get udpReceiveBuffers(): number[] {
    const sizes: number[] = [];
    for (const socket of this.#udpSockets()) {
      try {
        sizes.push(socket.getRecvBufferSize());
      } catch {
        // closed meanwhile
      }
    }
    return sizes;
  }

  /**
   * werift's ICE sockets. werift keeps them private and never sizes them (werift 0.25.2:
   * RTCIceTransport.connection.protocols[].transport.socket, a dgram Socket bound in gathering).
   */
  #udpSockets(): Socket[] {
    const sockets: Socket[] = [];
    for (const t of this.#pc.iceTransports) {
      const protocols = (t.connection as unknown as { protocols?: Array<{ transport?: { socket?: Socket } }> }).protocols ?? [];
      for (const p of protocols) if (p.transport?.socket) sockets.push(p.transport.socket);
    }
    return sockets;
  }

  async acceptAnswer(description: SessionDescription): Promise<void> {
    if (description.type !== 'answer') throw new TypeError(`expected an answer, got ${description.type}`);
    this.#remoteMaxMessageSize = parseMaxMessageSize(description.sdp);
    const sdp = filterCandidateLines(description.sdp, (line) => this.#isAcceptableRemote(line));
    await this.#pc.setRemoteDescription({ type: 'answer', sdp });
  }

  async addRemoteCandidate(candidate: LinkCandidate | null): Promise<void> {
    if (candidate === null || candidate.candidate === '') return; // end-of-candidates: nothing to do
    if (!this.#isAcceptableRemote(candidate.candidate)) return;
    await this.#pc.addIceCandidate({
      candidate: candidate.candidate,
      ...(candidate.sdpMid != null ? { sdpMid: candidate.sdpMid } : {}),
      ...(candidate.sdpMLineIndex != null ? { sdpMLineIndex: candidate.sdpMLineIndex } : {}),
    });
  }

  async close(): Promise<void> {
    await this.#pc.close();
  }

  #negotiatedMaxMessageSize(): number {
    const ours = this.#localMaxMessageSize === 0 ? Number.POSITIVE_INFINITY : this.#localMaxMessageSize;
    const remote = this.#remoteMaxMessageSize ?? SDP_DEFAULT_MAX_MESSAGE_SIZE;
    const theirs = remote === 0 ? Number.POSITIVE_INFINITY : remote;
    const size = Math.min(ours, theirs);
    return Number.isFinite(size) ? size : CHROMIUM_MAX_MESSAGE_SIZE;
  }

  #isAllowedLocal(candidateLine: string): boolean {
    const address = candidateAddress(candidateLine);
    return address !== undefined && this.#allowed.has(address);
  }

  #isAcceptableRemote(candidateLine: string): boolean {
    const address = candidateAddress(candidateLine);
    if (address === undefined) return false;
    // mDNS names make werift wait up to 10 s resolving them (WEBRTC-NOTES 4); the connection
    // forms through peer-reflexive candidates instead.
    if (address.endsWith('.local')) return false;
    return !this.#loopbackOnly || isLoopback(address);
  }
}

function isLoopback(address: string): boolean {
  return (isIPv4(address) && address.startsWith('127.')) || address === '::1';
}
