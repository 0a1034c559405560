/**
 * The signaling wire protocol: JSON text frames, their types, and the parsers for both sides.
 *
 * Runtime-neutral (the browser bundle imports it through `signaling-client.ts`). Client messages are
 * hostile input to the server, so {@link parseClientMessage} accepts exactly the documented
 * shapes and nothing else; {@link parseServerMessage} is lenient about unknown types so a newer
 * server does not break an older tab.
 */
import { parseAppConfig, type AppConfig } from './app-config.ts';
import type { SignalingErrorCode } from './signaling-errors.ts';
import { isSignalingErrorCode } from './signaling-errors.ts';

/** The roles that may hold a signaling connection. Hosts only talk to ingresses and back. */
export type PeerRole = 'host' | 'ingress';

/** A connected peer as others see it. */
export interface PeerInfo {
  /** Server-assigned, random, new for every connection. */
  id: string;
  role: PeerRole;
  /** The token's `sub`, when it had one. */
  sub?: string;
  /** Free-form metadata from the peer's hello (name, userAgent, cores, ...). Not verified. */
  info: Record<string, unknown>;
  /** When the peer said hello, in ms since the epoch. */
  since: number;
  /** Set by signaling from the host's token: a volunteer's host (protocol/trust.ts). */
  volunteer?: true;
  /** A volunteer's app scope, from its invite; absent for any `--volunteers` app. */
  apps?: string[];
  /** The operator drained the host (`dcdn hosts drain`): send it no new requests. */
  draining?: true;
  /**
   * A volunteer's: when its sessions end (ms since the epoch): its invite's expiry plus the
   * operator's grace. Signaling disconnects it then, and ingresses close their sessions with it
   * at the same time on their own, signaling or not.
   */
  expiresAt?: number;
  /** Cluster mode: the signaling node that holds the peer's connection (docs/cluster.md). */
  node?: string;
  /** Cluster mode: the peer's region (its signaling node's `--region`; an ingress's own). */
  region?: string;
}

/** First message on every connection. */
export interface HelloMessage { type: 'hello'; info: Record<string, unknown> }
/** Asks the server to relay `data` to the peer `to` (of the other role). */
export interface SignalRequest { type: 'signal'; to: string; data: unknown }
/** A host's answer to a {@link CheckMessage}: whether the candidate version loaded. */
export interface CheckedMessage { type: 'checked'; id: string; ok: boolean; error: string; ms: number }
/** What a host has loaded, sent whenever it changes: operators see it in `dcdn apps`. */
export interface StatusMessage { type: 'status'; apps: AppStatus[] }
/**
 * One app on one host: the version it serves (or is loading, or failed to load). `sha256` is the
 * deployment id of that entry (AppRef.sha256): a secret change reloads the same version under a
 * new id, so a rollout is only seen complete by it (hosts of older builds leave it out).
 */
export interface AppStatus { name: string; version: number; state: 'serving' | 'loading' | 'failed'; sha256?: string }
/**
 * Client keepalive: a client that heard nothing from the server for a while asks for a `pong`,
 * so a frozen signaling machine (no FIN) is noticed by the client, not only by the server.
 */
export interface PingMessage { type: 'ping' }
/**
 * An ingress's answer to a {@link CronMessage}: how the scheduled run went (`code` and `error`
 * empty when `ok`), on which host (its name, '' when none ran it), and how long it took.
 */
export interface CronResultMessage { type: 'cron-result'; id: string; ok: boolean; code: string; error: string; host: string; ms: number }
export type ClientMessage = HelloMessage | SignalRequest | CheckedMessage | StatusMessage | PingMessage | CronResultMessage;

/** A STUN or TURN server for the peer's RTCPeerConnection: the W3C `RTCIceServer` shape. */
export interface IceServer { urls: string | string[]; username?: string; credential?: string }
/**
 * `iceServers` is set when the operator configured STUN/TURN on signaling; TURN entries carry
 * credentials minted for this connection (signaling/turn.ts). Absent: use your own, if any.
 */
export interface WelcomeMessage {
  type: 'welcome';
  id: string;
  role: PeerRole;
  peers: PeerInfo[];
  iceServers?: IceServer[];
  /** The peer list continues in `peers` messages (large directories are sent in chunks). */
  more?: true;
}
/**
 * An authoritative peer list, without a new id: the chunks after a welcome that said `more`, and
 * a resync after the server's view was rebuilt (cluster mode). The consumer collects chunks and
 * replaces its whole list when `done` is true.
 */
export interface PeersMessage { type: 'peers'; peers: PeerInfo[]; done: boolean }
/** The server's answer to a {@link PingMessage}. */
export interface PongMessage { type: 'pong' }
/** One ingress of the cluster, as other ingresses see it (placement and forwarding). */
export interface ClusterIngress {
  /** The ingress's unique name (its placement key). */
  name: string;
  region: string;
  /** Placement weight (default 1): twice the weight takes about twice the hosts. */
  weight: number;
  draining: boolean;
  /** Where peers forward requests to it (`--peer-url`), if it takes forwards. */
  peerUrl?: string;
}
/**
 * Sent to ingresses after welcome and whenever the set of live ingresses changes: who else serves,
 * how many ingresses each host attaches to (`attach`), and the key that signs forwarded requests.
 * A server that never sends it is a single node: the ingress then attaches every host.
 */
export interface ClusterMessage { type: 'cluster'; ingresses: ClusterIngress[]; attach: number; peerKey: string; region: string }
/** Fresh TURN credentials, sent before the previous ones expire; replaces welcome's `iceServers`. */
export interface IceMessage { type: 'ice'; iceServers: IceServer[] }
export interface JoinMessage { type: 'join'; peer: PeerInfo }
/** A peer's info changed (drained or resumed by the operator); sent to the other role. */
export interface UpdateMessage { type: 'update'; peer: PeerInfo }
/**
 * Why a peer left, as sent in `leave` messages and logged: a closed set, documented in
 * docs/signaling.md. The ingress acts on `banned` (it cuts the host off at once, requests in
 * flight and all); the others only inform.
 */
export const LEAVE_REASONS = [
  'closed',
  'heartbeat-timeout',
  'slow-consumer',
  'shutdown',
  'banned',
  // A volunteer whose invite expired (plus grace): ingresses cut it off at once, like a ban.
  'expired',
  'protocol-error',
  'SIG_BAD_MESSAGE',
  'SIG_MESSAGE_TOO_LARGE',
  'SIG_RATE_LIMITED',
  'SIG_HELLO_TIMEOUT',
  // Cluster mode: a newer registration of the same host id or ingress name took over.
  'replaced',
  // Cluster mode: the peer's signaling node died (its lease ran out).
  'node-lost',
  // Cluster mode: the entry's lease ran out while its node lived (a bug, logged).
  'lease-expired',
  'SIG_DUPLICATE_PEER',
] as const;
export type LeaveReason = (typeof LEAVE_REASONS)[number];

/** Whether `value` is one of {@link LEAVE_REASONS}. */
export function isLeaveReason(value: unknown): value is LeaveReason {
  return typeof value === 'string' && (LEAVE_REASONS as readonly string[]).includes(value);
}

/**
 * A peer left. A reason this version does not know (from a newer server) reads as `closed`,
 * so an older tab or ingress still drops the peer.
 */
export interface LeaveMessage { type: 'leave'; id: string; reason: LeaveReason }
/** A relayed signal; `from` is set by the server, never taken from the sender. */
export interface SignalMessage { type: 'signal'; from: string; data: unknown }
export interface ErrorMessage { type: 'error'; code: SignalingErrorCode; message: string; to?: string }
/** The active version of every deployed app; sent after welcome and whenever it changes. */
export interface AppsMessage { type: 'apps'; apps: AppRef[] }
/** An app's active version, named by content hash so a host fetches each version once. */
export interface AppRef { name: string; version: number; sha256: string; config: AppConfig }
/**
 * Asks a host to load a version that is not live yet (`dcdn deploy` checks a bundle this way
 * before making it live) and to answer with `checked`. The host fetches the candidate from
 * `/v1/checks/:id` with its token; it does not serve it.
 */
export interface CheckMessage { type: 'check'; id: string; app: string; config: AppConfig }
/**
 * Asks an ingress to run an app's `scheduled()` handler once on one host allowed to run it, and
 * to answer with `cron-result` (docs/apps.md, "Cron triggers"). Signaling sends it once per
 * tick for the whole network, to one ingress; `scheduledTime` is the tick in ms since the epoch.
 */
export interface CronMessage { type: 'cron'; id: string; app: string; cron: string; scheduledTime: number }
export type ServerMessage =
  | WelcomeMessage
  | JoinMessage
  | UpdateMessage
  | LeaveMessage
  | SignalMessage
  | ErrorMessage
  | AppsMessage
  | IceMessage
  | CheckMessage
  | CronMessage
  | PeersMessage
  | PongMessage
  | ClusterMessage;

/** Largest hello `info`, as UTF-8 JSON bytes. */
export const MAX_INFO_BYTES = 8 * 1024;
/** Most apps one `status` message may list. */
export const MAX_STATUS_APPS = 1000;
/** Longest load error a host may report in `checked`; longer ones are cut. */
export const MAX_CHECK_ERROR_LENGTH = 2000;
/** Longest error (message and stack) an ingress may report in `cron-result`; longer ones are cut. */
export const MAX_CRON_ERROR_LENGTH = 4000;
/** Longest error code and host name accepted in `cron-result`. */
const MAX_CRON_FIELD_LENGTH = 128;
/** Longest peer id accepted in `to`; server ids are 36-character UUIDs. */
export const MAX_ID_LENGTH = 64;
/** Most ICE servers, and most URLs per server, accepted from the server. */
export const MAX_ICE_SERVERS = 16;
/** Longest ICE URL, username or credential accepted from the server. */
const MAX_ICE_FIELD_LENGTH = 512;
/**
 * Deepest nesting accepted in `info` and `data`. SDP and ICE candidates are two levels deep; the
 * bound keeps `JSON.stringify` on relay from overflowing the stack on `[[[[...]]]]`.
 */
export const MAX_DEPTH = 32;
/**
 * Keys refused anywhere in a client message: relayed objects end up in consumers' code, where a
 * careless merge of `__proto__` or `constructor.prototype` would pollute prototypes.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; reason: string };

const encoder = new TextEncoder();

/**
 * Parses and validates one text frame from a client. Never throws.
 *
 * @example
 * ```ts
 * const result = parseClientMessage('{"type":"signal","to":"abc","data":{"sdp":"..."}}');
 * if (!result.ok) closeWith('SIG_BAD_MESSAGE', result.reason);
 * ```
 */
export function parseClientMessage(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  if (!isPlainRecord(value)) return { ok: false, reason: 'a message must be a JSON object' };
  const unsafe = findUnsafeStructure(value);
  if (unsafe !== null) return { ok: false, reason: unsafe };

  const type = value['type'];
  if (type === 'hello') {
    if (!hasExactKeys(value, ['type', 'info'])) return { ok: false, reason: 'hello takes exactly {type, info}' };
    const info = value['info'];
    if (!isPlainRecord(info)) return { ok: false, reason: 'hello info must be an object' };
    if (encoder.encode(JSON.stringify(info)).byteLength > MAX_INFO_BYTES) {
      return { ok: false, reason: `hello info exceeds ${MAX_INFO_BYTES} bytes` };
    }
    return { ok: true, message: { type, info } };
  }
  if (type === 'signal') {
    if (!hasExactKeys(value, ['type', 'to', 'data'])) return { ok: false, reason: 'signal takes exactly {type, to, data}' };
    const to = value['to'];
    if (!isId(to)) return { ok: false, reason: `signal to must be a non-empty string of at most ${MAX_ID_LENGTH} characters` };
    return { ok: true, message: { type, to, data: value['data'] } };
  }
  if (type === 'checked') {
    if (!hasExactKeys(value, ['type', 'id', 'ok', 'error', 'ms'])) return { ok: false, reason: 'checked takes exactly {type, id, ok, error, ms}' };
    const { id, ok, error, ms } = value;
    if (!isId(id) || typeof ok !== 'boolean' || typeof error !== 'string' || typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      return { ok: false, reason: 'checked needs an id, ok (boolean), error (string) and ms (number)' };
    }
    return { ok: true, message: { type, id, ok, error: error.slice(0, MAX_CHECK_ERROR_LENGTH), ms } };
  }
  if (type === 'status') {
    if (!hasExactKeys(value, ['type', 'apps'])) return { ok: false, reason: 'status takes exactly {type, apps}' };
    const apps = value['apps'];
    if (!Array.isArray(apps) || apps.length > MAX_STATUS_APPS) return { ok: false, reason: `status apps must be a list of at most ${MAX_STATUS_APPS}` };
    const list: AppStatus[] = [];
    for (const a of apps) {
      if (!isPlainRecord(a) || !(hasExactKeys(a, ['name', 'version', 'state']) || hasExactKeys(a, ['name', 'version', 'state', 'sha256']))) {
        return { ok: false, reason: 'each status entry takes exactly {name, version, state} and an optional sha256' };
      }
      const { name, version, state, sha256 } = a;
      if (sha256 !== undefined && (typeof sha256 !== 'string' || !/^[0-9a-f]{1,128}$/.test(sha256))) return { ok: false, reason: 'a status entry sha256 is lowercase hex' };
      if (typeof name !== 'string' || !/^[a-z0-9-]{1,63}$/.test(name) || !Number.isInteger(version) || (version as number) < 0 || (state !== 'serving' && state !== 'loading' && state !== 'failed')) {
        return { ok: false, reason: 'a status entry needs an app name, a version and a state (serving, loading or failed)' };
      }
      list.push({ name, version: version as number, state, ...(sha256 !== undefined ? { sha256 } : {}) });
    }
    return { ok: true, message: { type, apps: list } };
  }
  if (type === 'cron-result') {
    if (!hasExactKeys(value, ['type', 'id', 'ok', 'code', 'error', 'host', 'ms'])) return { ok: false, reason: 'cron-result takes exactly {type, id, ok, code, error, host, ms}' };
    const { id, ok, code, error, host, ms } = value;
    if (!isId(id)) return { ok: false, reason: 'cron-result id must be a short string' };
    if (typeof ok !== 'boolean') return { ok: false, reason: 'cron-result ok must be true or false' };
    if (typeof code !== 'string' || code.length > MAX_CRON_FIELD_LENGTH || typeof host !== 'string' || host.length > MAX_CRON_FIELD_LENGTH) return { ok: false, reason: `cron-result code and host must be strings of at most ${MAX_CRON_FIELD_LENGTH} characters` };
    if (typeof error !== 'string') return { ok: false, reason: 'cron-result error must be a string' };
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return { ok: false, reason: 'cron-result ms must be a non-negative number' };
    return { ok: true, message: { type, id, ok, code, error: error.slice(0, MAX_CRON_ERROR_LENGTH), host, ms } };
  }
  if (type === 'ping') {
    if (!hasExactKeys(value, ['type'])) return { ok: false, reason: 'ping takes exactly {type}' };
    return { ok: true, message: { type } };
  }
  return { ok: false, reason: 'unknown message type' };
}

/**
 * Parses one text frame from the server. Returns null for anything that is not a known message
 * (including types added by a newer server), so callers can simply ignore it.
 */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainRecord(value)) return null;
  switch (value['type']) {
    case 'welcome': {
      const { id, role, peers } = value;
      if (!isId(id) || !isPeerRole(role) || !Array.isArray(peers) || !peers.every(isPeerInfo)) return null;
      const more = value['more'] === true ? { more: true as const } : {};
      if (!Object.hasOwn(value, 'iceServers')) return { type: 'welcome', id, role, peers, ...more };
      const iceServers = parseIceServers(value['iceServers']);
      return iceServers === null ? null : { type: 'welcome', id, role, peers, iceServers, ...more };
    }
    case 'peers': {
      const { peers, done } = value;
      if (!Array.isArray(peers) || !peers.every(isPeerInfo) || typeof done !== 'boolean') return null;
      return { type: 'peers', peers, done };
    }
    case 'pong':
      return { type: 'pong' };
    case 'cluster': {
      const { ingresses, attach, peerKey, region } = value;
      if (!Array.isArray(ingresses) || ingresses.length > 10_000 || !ingresses.every(isClusterIngress)) return null;
      if (!Number.isInteger(attach) || (attach as number) < 1 || typeof peerKey !== 'string' || typeof region !== 'string') return null;
      return {
        type: 'cluster',
        ingresses: ingresses.map((i: ClusterIngress) => ({ name: i.name, region: i.region, weight: i.weight, draining: i.draining, ...(i.peerUrl !== undefined ? { peerUrl: i.peerUrl } : {}) })),
        attach: attach as number,
        peerKey,
        region,
      };
    }
    case 'ice': {
      const iceServers = parseIceServers(value['iceServers']);
      return iceServers === null ? null : { type: 'ice', iceServers };
    }
    case 'join':
      return isPeerInfo(value['peer']) ? { type: 'join', peer: value['peer'] } : null;
    case 'update':
      return isPeerInfo(value['peer']) ? { type: 'update', peer: value['peer'] } : null;
    case 'leave': {
      const { id, reason } = value;
      return isId(id) && typeof reason === 'string' ? { type: 'leave', id, reason: isLeaveReason(reason) ? reason : 'closed' } : null;
    }
    case 'signal': {
      const { from } = value;
      return isId(from) && Object.hasOwn(value, 'data') ? { type: 'signal', from, data: value['data'] } : null;
    }
    case 'apps': {
      const { apps } = value;
      if (!Array.isArray(apps) || apps.length > 10_000 || !apps.every(isAppRef)) return null;
      const refs: AppRef[] = [];
      for (const a of apps as Array<AppRef & { config?: unknown }>) {
        let config: AppConfig;
        try {
          config = parseAppConfig(a.config);
        } catch {
          return null;
        }
        refs.push({ name: a.name, version: a.version, sha256: a.sha256, config });
      }
      return { type: 'apps', apps: refs };
    }
    case 'check': {
      const { id, app } = value;
      if (!isId(id) || typeof app !== 'string' || !/^[a-z0-9-]{1,63}$/.test(app)) return null;
      try {
        return { type: 'check', id, app, config: parseAppConfig(value['config']) };
      } catch {
        return null;
      }
    }
    case 'cron': {
      const { id, app, cron, scheduledTime } = value;
      if (!isId(id) || typeof app !== 'string' || !/^[a-z0-9-]{1,63}$/.test(app) || typeof cron !== 'string' || cron.length > 200) return null;
      if (typeof scheduledTime !== 'number' || !Number.isSafeInteger(scheduledTime) || scheduledTime < 0) return null;
      return { type: 'cron', id, app, cron, scheduledTime };
    }
    case 'error': {
      const { code, message, to } = value;
      if (!isSignalingErrorCode(code) || typeof message !== 'string') return null;
      return isId(to) ? { type: 'error', code, message, to } : { type: 'error', code, message };
    }
    default:
      return null;
  }
}

/**
 * Copies a server's `iceServers` field (a list of W3C `RTCIceServer`s), keeping only `urls`,
 * `username` and `credential`; null when it is malformed. These objects go straight into
 * `RTCPeerConnection`, so only STUN and TURN URLs pass.
 */
function parseIceServers(value: unknown): IceServer[] | null {
  if (!Array.isArray(value) || value.length > MAX_ICE_SERVERS) return null;
  const servers: IceServer[] = [];
  for (const entry of value) {
    if (!isPlainRecord(entry)) return null;
    const { urls, username, credential } = entry;
    const list: unknown = typeof urls === 'string' ? [urls] : urls;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_ICE_SERVERS || !list.every(isIceUrl)) return null;
    if (!isOptionalIceField(username) || !isOptionalIceField(credential)) return null;
    const server: IceServer = { urls: typeof urls === 'string' ? urls : [...(list as string[])] };
    if (username !== undefined) server.username = username;
    if (credential !== undefined) server.credential = credential;
    servers.push(server);
  }
  return servers;
}

function isIceUrl(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_ICE_FIELD_LENGTH && /^(stuns?|turns?):\S+$/i.test(value);
}

function isOptionalIceField(value: unknown): value is string | undefined {
  return value === undefined || (typeof value === 'string' && value.length <= MAX_ICE_FIELD_LENGTH);
}

function isClusterIngress(value: unknown): value is ClusterIngress {
  if (!isPlainRecord(value)) return false;
  const { name, region, weight, draining, peerUrl } = value;
  return (
    typeof name === 'string' && name.length > 0 && name.length <= 128 &&
    typeof region === 'string' && region.length <= 64 &&
    typeof weight === 'number' && Number.isFinite(weight) && weight > 0 &&
    typeof draining === 'boolean' &&
    (peerUrl === undefined || (typeof peerUrl === 'string' && peerUrl.length <= 2048))
  );
}

function isAppRef(value: unknown): value is AppRef {
  if (!isPlainRecord(value)) return false;
  const { name, version, sha256 } = value;
  return typeof name === 'string' && /^[a-z0-9-]{1,63}$/.test(name) && Number.isInteger(version) && (version as number) > 0 && typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256);
}

/** A non-null, non-array object as produced by JSON.parse. */
function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasExactKeys(value: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Object.keys(value);
  return own.length === keys.length && keys.every((key) => Object.hasOwn(value, key));
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH;
}

function isPeerRole(value: unknown): value is PeerRole {
  return value === 'host' || value === 'ingress';
}

function isPeerInfo(value: unknown): value is PeerInfo {
  if (!isPlainRecord(value)) return false;
  const { id, role, sub, info, since, volunteer, apps, draining, expiresAt, node, region } = value;
  return (
    isId(id) &&
    isPeerRole(role) &&
    (sub === undefined || typeof sub === 'string') &&
    isPlainRecord(info) &&
    typeof since === 'number' &&
    (volunteer === undefined || volunteer === true) &&
    (draining === undefined || draining === true) &&
    (expiresAt === undefined || (typeof expiresAt === 'number' && Number.isFinite(expiresAt))) &&
    (node === undefined || (typeof node === 'string' && node.length <= 128)) &&
    (region === undefined || (typeof region === 'string' && region.length <= 64)) &&
    (apps === undefined || (Array.isArray(apps) && apps.length <= 64 && apps.every((a) => typeof a === 'string' && a.length <= 63)))
  );
}

/**
 * Walks the parsed value without recursion (so hostile nesting cannot overflow the stack) and
 * returns why it is unsafe, or null.
 */
function findUnsafeStructure(root: unknown): string | null {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: root, depth: 0 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_DEPTH) return `nested deeper than ${MAX_DEPTH} levels`;
    if (Array.isArray(value)) {
      for (const item of value) stack.push({ value: item, depth: depth + 1 });
      continue;
    }
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) return `key "${key}" is not allowed`;
      stack.push({ value: (value as Record<string, unknown>)[key], depth: depth + 1 });
    }
  }
  return null;
}
