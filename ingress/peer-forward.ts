/**
 * Ingress-to-ingress forwarding in a cluster (docs/cluster.md): an ingress with no usable host
 * for a request (`INGRESS_NO_HOST`: none may serve the app, none yet; `INGRESS_HOSTS_BUSY`)
 * hands it, once, to a peer ingress that placement says is attached to a host that may serve it.
 *
 * - Which peer: those attached to the most eligible hosts, same region first ({@link rankPeers}).
 *   The second is tried only for idempotent requests without a body, and only when the first
 *   answered 503 NO_HOST/BUSY (or SHUTTING_DOWN) or could not be reached.
 * - Transport: HTTP/1.1 with keep-alive to the peer's peer listener (`--peer-listen`); the
 *   request body is streamed, never buffered, so the decision is made before it is read.
 * - Authentication: `dcdn-peer: <from>.<unix-ms>.<base64url HMAC-SHA256(peerKey, from|ms|method|url)>`,
 *   valid for ±`authWindowMs`. The key comes from signaling's `cluster` message.
 * - Loops: a request that came in on the peer listener is never forwarded again.
 * - Path: answers carry `dcdn-via: <forwarder>,<answerer>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ClusterIngress, ErrorCode, HeaderList } from '../protocol/index.ts';
import { isErrorCode } from '../protocol/index.ts';
import { sendError } from './error-response.ts';
import type { KnownHost } from './host-connector.ts';
import type { HostTraits } from './host-traits.ts';
import type { PlacementView } from './placement-view.ts';

/** The request header that authenticates a forward on the peer listener. */
export const PEER_HEADER = 'dcdn-peer';
/** The response header naming the ingresses a request went through, in order. */
export const VIA_HEADER = 'dcdn-via';

/** Named limits of forwarding; see docs/ingress.md. */
export interface PeerForwardOptions {
  /** A `dcdn-peer` signature is accepted this far from the receiver's clock, either way. Default 30000 ms. */
  authWindowMs: number;
  /**
   * Time a peer gets to send the response head. The peer runs its own head timeout (30 s by
   * default) and answers 504 itself, so this is longer. Default 35000 ms.
   */
  headTimeoutMs: number;
  /** A peer connection silent this long (no byte either way) is cut. Default 60000 ms. */
  idleTimeoutMs: number;
  /** Keep-alive sockets per peer. Default 64. */
  maxSockets: number;
}

export const PEER_FORWARD_DEFAULTS: PeerForwardOptions = {
  authWindowMs: 30_000,
  headTimeoutMs: 35_000,
  idleTimeoutMs: 60_000,
  maxSockets: 64,
};

/** What a forwarding attempt came to, for metrics (a bounded label). */
export type ForwardOutcome = 'answered' | 'refused' | 'unreachable' | 'failed';

/** Codes of a peer's 503 that mean "nothing was done here": another peer may be asked. */
const PEER_DECLINES: ReadonlySet<string> = new Set(['INGRESS_NO_HOST', 'INGRESS_HOSTS_BUSY', 'INGRESS_SHUTTING_DOWN']);

/** Hop-by-hop response headers (RFC 9110 §7.6.1), not passed back from the peer. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** The HMAC input: every field that makes a forward distinct, joined by `|`. */
function signed(from: string, ms: number, method: string, url: string): string {
  return `${from}|${ms}|${method}|${url}`;
}

/**
 * The `dcdn-peer` header value for a forward from ingress `from` at `now`.
 *
 * @example
 * ```ts
 * signPeerRequest(view.peerKey, 'ingress-a', 'GET', '/x?y=1', Date.now()); // 'ingress-a.1733620000000.Q2h…'
 * ```
 */
export function signPeerRequest(peerKey: string, from: string, method: string, url: string, now: number): string {
  const ms = Math.floor(now);
  const mac = createHmac('sha256', peerKey).update(signed(from, ms, method, url)).digest('base64url');
  return `${from}.${ms}.${mac}`;
}

/**
 * Checks a `dcdn-peer` header: the forwarder's name when the signature is good and its time
 * within `windowMs` of `now`, else why not. Names may hold dots: the time and MAC are the last two fields.
 */
export function verifyPeerRequest(peerKey: string | null, header: string | string[] | undefined, method: string, url: string, now: number, windowMs: number): { from: string } | { error: string } {
  if (!peerKey) return { error: 'this ingress has no peer key yet (no cluster message from signaling)' };
  if (typeof header !== 'string' || header.length > 512) return { error: `a valid ${PEER_HEADER} header is required` };
  const lastDot = header.lastIndexOf('.');
  const midDot = lastDot > 0 ? header.lastIndexOf('.', lastDot - 1) : -1;
  if (midDot <= 0) return { error: `malformed ${PEER_HEADER} header` };
  const from = header.slice(0, midDot);
  const msText = header.slice(midDot + 1, lastDot);
  const mac = header.slice(lastDot + 1);
  if (!/^\d{1,16}$/.test(msText)) return { error: `malformed ${PEER_HEADER} header` };
  const ms = Number(msText);
  if (Math.abs(now - ms) > windowMs) return { error: `the ${PEER_HEADER} signature is outside the ${windowMs} ms window (clock skew, or a replay)` };
  const expected = createHmac('sha256', peerKey).update(signed(from, ms, method, url)).digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { error: `the ${PEER_HEADER} signature does not match` };
  return { from };
}

/**
 * The peers to forward a request to, best first: live peers with a peer URL that placement
 * puts on at least one host that may serve it (not draining, `eligible`), same region as this
 * ingress first, then the most such hosts first, then by name (so ties are stable).
 */
export function rankPeers(view: PlacementView, known: Iterable<KnownHost>, eligible: (traits: HostTraits) => boolean): ClusterIngress[] {
  const counts = new Map<string, number>();
  for (const host of known) {
    if (!host.placement || host.traits.draining || !eligible(host.traits)) continue;
    for (const name of host.placement) if (name !== view.self.name) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const region = view.self.region;
  const ranked: Array<{ peer: ClusterIngress; hosts: number }> = [];
  for (const [name, hosts] of counts) {
    const peer = view.peer(name);
    if (peer) ranked.push({ peer, hosts });
  }
  ranked.sort((a, b) => {
    const ra = a.peer.region === region;
    const rb = b.peer.region === region;
    if (ra !== rb) return ra ? -1 : 1;
    return b.hosts - a.hosts || (a.peer.name < b.peer.name ? -1 : 1);
  });
  return ranked.map((r) => r.peer);
}

/** One request to hand to peers. */
export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /** The headers as a host would get them (hop-by-hop removed, X-Forwarded-* set, trace ids). */
  headers: HeaderList;
  hasBody: boolean;
  /** Candidates, best first ({@link rankPeers}); at most two are tried. */
  peers: readonly ClusterIngress[];
  /** This ingress's name (the first `dcdn-via` entry, the signer). */
  self: string;
  peerKey: string;
  /** What this ingress would have answered itself: used when no peer could be reached. */
  localError: Extract<ErrorCode, 'INGRESS_NO_HOST' | 'INGRESS_HOSTS_BUSY'>;
}

/** How a forward ended, for the access log and metrics. */
export interface ForwardResult {
  status: number;
  code: ErrorCode | undefined;
  /** The peer that answered (or was last tried). */
  peer: string | undefined;
  /** The answering host's name and transport, from the peer's `dcdn-host` / `dcdn-transport`. */
  host: string | undefined;
  transport: string | undefined;
  bytesIn: number;
  bytesOut: number;
}

/** Forwards requests to peer ingresses over keep-alive HTTP/1.1. One per ingress. */
export class PeerForwarder {
  readonly #opts: PeerForwardOptions;
  readonly #agents = new Map<string, Agent>();
  readonly #onAttempt: (outcome: ForwardOutcome) => void;

  constructor(options: Partial<PeerForwardOptions> = {}, onAttempt: (outcome: ForwardOutcome) => void = () => {}) {
    this.#opts = { ...PEER_FORWARD_DEFAULTS, ...options };
    this.#onAttempt = onAttempt;
  }

  /** Forwards `f` to its first peer (and, for an idempotent request, its second); resolves when answered. */
  async forward(f: ForwardRequest): Promise<ForwardResult> {
    const result: ForwardResult = { status: 0, code: undefined, peer: undefined, host: undefined, transport: undefined, bytesIn: 0, bytesOut: 0 };
    const method = f.req.method ?? 'GET';
    const idempotent = (method === 'GET' || method === 'HEAD') && !f.hasBody;
    const tries = f.peers.slice(0, idempotent ? 2 : 1);
    const unreachable: string[] = [];
    for (let i = 0; i < tries.length; i++) {
      const peer = tries[i]!;
      result.peer = peer.name;
      const outcome = await this.#once(f, peer, i === tries.length - 1, result);
      this.#onAttempt(outcome);
      if (outcome === 'answered' || outcome === 'failed') return result;
      if (outcome === 'unreachable') unreachable.push(peer.name);
      if (f.res.destroyed) return result;
    }
    // Every peer tried was unreachable (or declined with nothing left to try): this ingress's own answer.
    result.status = 503;
    result.code = f.localError;
    const extra: Record<string, string> = { [VIA_HEADER]: f.self };
    if (f.hasBody) extra.connection = 'close';
    sendError(f.res, f.localError, `no host here can take this request, and no peer ingress could be reached (${unreachable.join(', ')})`, extra);
    return result;
  }

  /** Destroys the keep-alive sockets. */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  #agent(origin: string): Agent {
    let agent = this.#agents.get(origin);
    if (!agent) {
      agent = new Agent({ keepAlive: true, maxSockets: this.#opts.maxSockets });
      this.#agents.set(origin, agent);
    }
    return agent;
  }

  /**
   * One try. 'refused': the peer declined with a 503 another peer may not (its answer dropped;
   * only when `last` is false); 'unreachable': no answer at all and nothing of the body sent;
   * 'answered': the peer's answer went to the client; 'failed': the client got an error or a
   * cut connection.
   */
  #once(f: ForwardRequest, peer: ClusterIngress, last: boolean, result: ForwardResult): Promise<ForwardOutcome> {
    return new Promise((resolve) => {
      const { req, res } = f;
      let settled = false;
      const settle = (o: ForwardOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(headTimer);
        resolve(o);
      };
      let target: URL;
      try {
        target = new URL(peer.peerUrl!);
      } catch {
        return settle('unreachable');
      }
      const url = req.url ?? '/';
      const method = req.method ?? 'GET';
      const headers: string[] = [];
      for (const [name, value] of f.headers) {
        // The router of the peer adds its own prefix; the signature is ours to add.
        const lower = name.toLowerCase();
        if (lower === 'x-forwarded-prefix' || lower === PEER_HEADER) continue;
        headers.push(name, value);
      }
      // An HTTP/1.0 request may come without Host; this ingress routed it as `localhost`, and
      // the peer (spoken to in HTTP/1.1, which requires Host) must route it the same way.
      if (!f.headers.some(([name]) => name.toLowerCase() === 'host')) headers.push('host', 'localhost');
      headers.push(PEER_HEADER, signPeerRequest(f.peerKey, f.self, method, url, Date.now()));
      const out = httpRequest({ protocol: target.protocol, hostname: target.hostname, port: target.port, method, path: url, headers, agent: this.#agent(target.origin), setHost: false });
      out.setTimeout(this.#opts.idleTimeoutMs, () => out.destroy(new Error('the peer connection was idle too long')));
      /** The connection to the peer was up: some of the request may have reached it. */
      let reached = false;
      out.on('socket', (socket) => {
        if (!socket.connecting) reached = true;
        else socket.once('connect', () => (reached = true));
      });
      const headTimer = setTimeout(() => {
        out.destroy(new Error('no response head in time'));
        result.status = 504;
        result.code = 'INGRESS_HEAD_TIMEOUT';
        sendError(res, 'INGRESS_HEAD_TIMEOUT', `the peer ingress ${peer.name} sent no response head within ${this.#opts.headTimeoutMs} ms`, { [VIA_HEADER]: f.self });
        settle('failed');
      }, this.#opts.headTimeoutMs);
      const onClientGone = () => {
        if (!res.writableFinished) out.destroy();
      };
      res.once('close', onClientGone);
      out.on('response', (answer) => {
        clearTimeout(headTimer);
        const code = answer.headers['dcdn-error'];
        if (!last && answer.statusCode === 503 && typeof code === 'string' && PEER_DECLINES.has(code)) {
          answer.resume();
          res.off('close', onClientGone);
          return settle('refused');
        }
        const status = answer.statusCode ?? 502;
        result.status = status;
        result.code = typeof code === 'string' && isErrorCode(code) ? code : undefined;
        result.host = headerString(answer.headers['dcdn-host']);
        result.transport = headerString(answer.headers['dcdn-transport']);
        try {
          res.writeHead(status, passHeaders(answer.rawHeaders));
        } catch {
          answer.destroy();
          sendError(res, 'INGRESS_BAD_RESPONSE', `the peer ingress ${peer.name} sent an unsendable head`, { [VIA_HEADER]: f.self });
          return settle('failed');
        }
        if (method === 'HEAD') res.flushHeaders();
        answer.on('data', (chunk: Buffer) => {
          result.bytesOut += chunk.byteLength;
          if (!res.write(chunk)) {
            answer.pause();
            res.once('drain', () => answer.resume());
          }
        });
        answer.once('end', () => {
          res.end();
          settle('answered');
        });
        // Cut after the head: the client's answer must not look complete.
        answer.once('aborted', () => {
          res.destroy();
          settle('failed');
        });
        answer.once('error', () => {
          res.destroy();
          settle('failed');
        });
      });
      out.on('error', (err) => {
        if (settled) return;
        if (res.headersSent) {
          res.destroy();
          return settle('failed');
        }
        if (reached && f.hasBody) {
          // Part of the body may have reached the peer: no second try, an answer of our own.
          result.status = 502;
          result.code = 'INGRESS_HOST_LOST';
          sendError(res, 'INGRESS_HOST_LOST', `the peer ingress ${peer.name} went away: ${err.message}`, { [VIA_HEADER]: f.self, connection: 'close' });
          return settle('failed');
        }
        res.off('close', onClientGone);
        settle('unreachable');
      });
      if (f.hasBody) {
        req.on('data', (chunk: Buffer) => {
          result.bytesIn += chunk.byteLength;
          if (!out.write(chunk)) {
            req.pause();
            out.once('drain', () => req.resume());
          }
        });
        req.once('end', () => out.end());
        req.once('error', () => out.destroy());
      } else {
        out.end();
      }
    });
  }
}

function headerString(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The peer's response headers minus hop-by-hop ones; `dcdn-*` pass, since the peer is trusted. */
function passHeaders(raw: readonly string[]): string[] {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') for (const t of raw[i + 1]!.split(',')) named.add(t.trim().toLowerCase());
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
