/**
 * A local peer's connection as the hub keeps it, and how peers are described to others: as
 * presence stores them (`PeerInfo`), as operators see hosts (`HostSummary`), and the trust and
 * apps that follow from them. Pure functions over the connection record; the hub
 * (signaling-hub.ts) owns the records and their sockets.
 */
import type { WebSocket } from 'ws';
import { mayRun, volunteerHostId, volunteerName, type AppRef, type AppStatus, type HostTrust, type LeaveReason, type PeerInfo, type PeerRole } from '../protocol/index.ts';
import type { BudgetTable, TokenBucket } from '../protocol/index.ts';
import type { SignalKind } from './message-checks.ts';
import type { PresenceEntry } from './cluster/types.ts';

/** A host as operators see it (`dcdn hosts list`). */
export interface HostSummary {
  id: string;
  /** The tab's own stable id (survives reconnects), from its hello. */
  hostId: string;
  name: string;
  sub: string | null;
  volunteer: boolean;
  apps: string[] | null;
  draining: boolean;
  address: string;
  since: string;
  userAgent: string | null;
  cores: number | null;
  memoryGiB: number | null;
  capabilities: string[];
  /** The signaling node that holds the host's connection. */
  node: string;
  /** Its region. */
  region: string;
  /**
   * The ingresses it is placed on, best first: K of the live ingresses by weighted rendezvous
   * hashing (protocol/placement.ts `assign`), the computation every ingress makes from the same
   * `cluster` message. Where it is meant to be attached; an ingress's `/_dcdn/health` shows the
   * links it actually holds (a link is still opening, or in its detach grace).
   */
  ingresses: string[];
}

export interface Connection {
  readonly id: string;
  readonly role: PeerRole;
  readonly sub: string | undefined;
  /** From the token: what the host may run (protocol/trust.ts). */
  readonly trust: HostTrust;
  /** The remote address of the socket. */
  readonly address: string;
  draining: boolean;
  readonly socket: WebSocket;
  readonly bucket: TokenBucket;
  /** Per signal kind (hosts only: ingresses are the operator's and not limited). */
  readonly signalBudgets: BudgetTable<SignalKind> | null;
  /** Set by hello; null while awaiting it. */
  info: Record<string, unknown> | null;
  since: number;
  missedPongs: number;
  helloTimer: ReturnType<typeof setTimeout> | null;
  graceTimer: ReturnType<typeof setTimeout> | null;
  /** Set when this side decided to end the connection, so the leave carries the real cause. */
  endReason: LeaveReason | null;
  /** When this peer was last given TURN credentials (ms since the epoch). */
  iceIssuedAt: number;
  /** What a host last reported it has loaded. */
  appStatus: AppStatus[];
  /** A volunteer's end (invite expiry plus grace, ms since the epoch); null for others. */
  expiresAt: number | null;
  expiryTimer: ReturnType<typeof setTimeout> | null;
  /** The presence key (set by hello). */
  key: string | null;
  /** The presence epoch; 0 while registering, or when admitted in island mode (the store was down). */
  epoch: number;
  /** Welcomed: listed in `#joined`, gets join/leave/update/signal. */
  welcomed: boolean;
  /** A `register` call is in flight (the renew loop leaves the peer alone meanwhile). */
  registering: boolean;
  /** Its info or status changed while it was not registered: the store is told once it is. */
  dirty: boolean;
  closed: boolean;
}

/**
 * A volunteer's hello with its id and name namespaced by its invite (trust.ts): what it chose
 * is kept only behind `vol-<invite>-`, so it cannot take an operator host's identity, and a ban
 * of it lands on its own id.
 */
export function namespaceVolunteer(info: Record<string, unknown>, conn: Pick<Connection, 'id' | 'sub'>): Record<string, unknown> {
  const tabId = typeof info['hostId'] === 'string' && info['hostId'] ? info['hostId'] : conn.id;
  const name = typeof info['name'] === 'string' && info['name'] ? info['name'] : tabId.slice(0, 8);
  return { ...info, hostId: volunteerHostId(conn.sub, tabId), name: volunteerName(name) };
}

export function hostName(info: Record<string, unknown>, id: string): string {
  const name = info['name'];
  return typeof name === 'string' && name ? name.slice(0, 64) : id;
}

export function hasCapabilities(info: Record<string, unknown>, required: readonly string[]): boolean {
  const caps = info['capabilities'];
  return required.every((r) => Array.isArray(caps) && caps.includes(r));
}

/** What a local peer is, as presence stores it (without node and region: entries carry those). */
export function toPeerInfo(conn: Connection): PeerInfo {
  const peer: PeerInfo = { id: conn.id, role: conn.role, info: conn.info ?? {}, since: conn.since };
  if (conn.sub !== undefined) peer.sub = conn.sub;
  if (conn.trust.volunteer) {
    peer.volunteer = true;
    if (conn.trust.apps) peer.apps = [...conn.trust.apps];
  }
  if (conn.draining) peer.draining = true;
  if (conn.expiresAt !== null) peer.expiresAt = conn.expiresAt;
  return peer;
}

/** A peer's trust as its PeerInfo tells it (any node's peer). */
export function trustOf(peer: PeerInfo): HostTrust {
  return { volunteer: peer.volunteer === true, apps: peer.apps ? [...peer.apps] : null };
}

/** What a peer is told is deployed: a volunteer's host hears only of the apps it may run. */
export function appsFor(trust: HostTrust, apps: AppRef[]): AppRef[] {
  return trust.volunteer ? apps.filter((a) => mayRun(trust, a)) : apps;
}

/**
 * A host entry as operators see it; `place` names the ingresses placement puts it on, computed
 * when `ingresses` is first read (or serialized): a ban's scan of every host never pays for it.
 */
export function toHostSummary(e: PresenceEntry, place: (e: PresenceEntry) => string[]): HostSummary {
  const { peer } = e;
  let placed: string[] | undefined;
  const info = peer.info;
  const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 256) : null);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const caps = Array.isArray(info['capabilities']) ? info['capabilities'].filter((c): c is string => typeof c === 'string').slice(0, 16) : [];
  return {
    id: peer.id,
    hostId: str(info['hostId']) ?? '',
    name: str(info['name']) ?? '',
    sub: peer.sub ?? null,
    volunteer: peer.volunteer === true,
    apps: peer.apps ? [...peer.apps] : null,
    draining: peer.draining === true,
    address: e.address,
    since: new Date(peer.since).toISOString(),
    userAgent: str(info['userAgent']),
    cores: num(info['cores']),
    memoryGiB: num(info['memoryGiB']),
    capabilities: caps,
    node: e.node,
    region: e.region,
    get ingresses() {
      return (placed ??= place(e));
    },
  };
}
