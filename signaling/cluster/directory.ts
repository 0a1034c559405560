/**
 * The Directory: this node's in-memory mirror of every presence entry in the cluster (by key, by
 * peer id, by role) and of the live signaling nodes (SCALE-OUT.md §3.2, §3.5). Welcome, join,
 * leave and update messages for local peers are made from it, so local and remote peers take
 * the same path.
 *
 * - Built from `presence.snapshot()` and kept current by `presence.tail()`. Events of this node
 *   are skipped on the tail: the hub applies its own registrations with the `local*` methods as
 *   they happen (so a node in island mode, with the store down, still lists its own peers).
 * - Epoch rules: a `join` applies only if its epoch is above the entry's (or there is none); an
 *   `update` applies at the entry's epoch (a patch of that registration) or above (a join we
 *   missed); a `leave` only at the entry's epoch. Epochs come from one counter, so replays and
 *   races never resurrect an old registration.
 * - Entries whose node's lease expired are hidden (a `leave` with reason `node-lost` goes out)
 *   before any janitor removes them; the node list is re-read every `nodeRefreshMs`.
 * - When the tail is lost (`onReset`), a new snapshot replaces the other nodes' entries and a
 *   `reset` change tells the hub to send every local peer an authoritative `peers` list. A
 *   snapshot that fails (the store is still down) is retried until one loads: the failed attempt
 *   stopped the old tail, so no later `onReset` would reach this view.
 */
import type { ClusterEvent, NodeRecord, PresenceEntry, PresenceStore } from './types.ts';
import type { PeerRole } from '../../protocol/index.ts';

/** How often the live-node list is re-read (entries of nodes that left it are hidden). */
export const NODE_REFRESH_MS = 2000;

/** Delays between attempts of a resync that failed (the store was down): short, so the view is back soon after the store. */
const RESYNC_RETRY_MS = [100, 250, 500, 1000];

/**
 * The epoch of a local entry whose registration has not been confirmed (in flight, or admitted in
 * island mode): no event of another node replaces it; the store's answer or the renew loop does.
 */
export const PENDING_EPOCH = Number.MAX_SAFE_INTEGER;

/** What changed in what local peers may see. */
export type DirectoryChange =
  | { t: 'join'; entry: PresenceEntry }
  | { t: 'leave'; entry: PresenceEntry; reason: string }
  /** `prev` is what was there before (peer info or status changed). */
  | { t: 'update'; entry: PresenceEntry; prev: PresenceEntry }
  /** A newer registration on another node took over a key this node held: close the local peer. */
  | { t: 'fenced'; entry: PresenceEntry; by: PresenceEntry }
  /** The view was rebuilt from a snapshot: send local peers the whole list. */
  | { t: 'reset' };

export interface DirectoryOptions {
  nodeId: string;
  /** Default {@link NODE_REFRESH_MS}. */
  nodeRefreshMs?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

export class Directory {
  readonly #presence: PresenceStore;
  readonly #nodeId: string;
  readonly #refreshMs: number;
  readonly #log: NonNullable<DirectoryOptions['log']>;
  readonly #byKey = new Map<string, PresenceEntry>();
  readonly #byPeer = new Map<string, PresenceEntry>();
  readonly #listeners = new Set<(c: DirectoryChange) => void>();
  /** Nodes with a live lease (this node always counts), as last read, plus nodes heard from since. */
  #live = new Map<string, NodeRecord | null>();
  /** Nodes that sent a join or update while a node list was being read (proof of life). */
  #heardDuringRefresh: Set<string> | null = null;
  #stopTail: (() => void) | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #ready = false;
  #closed = false;
  #resyncing: Promise<void> | null = null;
  /** A failed resync left the view without a feed: retried on this timer until a snapshot loads. */
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #resyncFailures = 0;

  constructor(presence: PresenceStore, options: DirectoryOptions) {
    this.#presence = presence;
    this.#nodeId = options.nodeId;
    this.#refreshMs = options.nodeRefreshMs ?? NODE_REFRESH_MS;
    this.#log = options.log ?? (() => {});
    this.#live.set(this.#nodeId, null);
  }

  /** True once the first snapshot is applied (before that, health answers 503 `starting`). */
  get ready(): boolean {
    return this.#ready;
  }

  /** Calls `listener` with every change local peers may see; returns its remover. */
  onChange(listener: (c: DirectoryChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Reads the node list and the first snapshot, then follows the event feed. */
  async start(): Promise<void> {
    await this.refreshNodes();
    await this.#load(false);
    this.#ready = true;
    if (this.#timer === null && !this.#closed) {
      this.#timer = setInterval(() => void this.refreshNodes().catch((err: unknown) => this.#log('warn', 'cannot read the live signaling nodes', { err: String(err) })), this.#refreshMs);
      this.#timer.unref?.();
    }
  }

  /** Takes a new snapshot (the tail was lost, the store came back) and emits `reset`. */
  resync(): Promise<void> {
    this.#resyncing ??= this.#load(true).then(
      () => {
        this.#resyncFailures = 0;
        if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
      },
      (err: unknown) => {
        // The old tail is stopped and no new one started: nothing else would ever bring this
        // view back (the store's "back" signal goes to tails, and there are none). Retry until
        // a snapshot loads, so the view converges soon after the store answers again.
        this.#scheduleRetry();
        throw err;
      },
    ).finally(() => {
      this.#resyncing = null;
    });
    return this.#resyncing;
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== null) return;
    const delay = RESYNC_RETRY_MS[Math.min(this.#resyncFailures++, RESYNC_RETRY_MS.length - 1)]!;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.resync().catch((err: unknown) => this.#log('warn', 'presence resync failed; retrying', { err: String(err) }));
    }, delay);
    this.#retryTimer.unref?.();
  }

  close(): void {
    this.#closed = true;
    this.#stopTail?.();
    this.#stopTail = null;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#listeners.clear();
  }

  /** The visible entry of a presence key. */
  get(key: string): PresenceEntry | undefined {
    const e = this.#byKey.get(key);
    return e && this.#visible(e) ? e : undefined;
  }

  /**
   * The entry of a peer id, and whether its node is live: a peer on a node whose lease ran out is
   * still found here (so a signal to it gets SIG_PEER_UNREACHABLE rather than SIG_UNKNOWN_PEER).
   */
  lookup(peerId: string): { entry: PresenceEntry; live: boolean } | undefined {
    const e = this.#byPeer.get(peerId);
    return e ? { entry: e, live: this.#visible(e) } : undefined;
  }

  /** Visible entries, oldest first, optionally of one role. */
  entries(role?: PeerRole): PresenceEntry[] {
    const out: PresenceEntry[] = [];
    for (const e of this.#byKey.values()) if (this.#visible(e) && (role === undefined || e.peer.role === role)) out.push(e);
    return out.sort((a, b) => a.peer.since - b.peer.since);
  }

  /** Live signaling nodes, each with how many visible peers it holds. */
  nodes(): Array<{ id: string; region: string; peers: number }> {
    const counts = new Map<string, number>();
    for (const e of this.#byKey.values()) if (this.#visible(e)) counts.set(e.node, (counts.get(e.node) ?? 0) + 1);
    return [...this.#live.entries()].map(([id, rec]) => ({ id, region: rec?.region ?? '', peers: counts.get(id) ?? 0 }));
  }

  /**
   * Applies this node's own registration. The newest local hello wins over an older local one;
   * an entry of another node with a larger epoch is kept (returns false: the hello lost the race).
   */
  localJoin(entry: PresenceEntry): boolean {
    const cur = this.#byKey.get(entry.key);
    if (cur && cur.node !== this.#nodeId && entry.epoch !== PENDING_EPOCH && cur.epoch > entry.epoch) return false;
    this.#put(entry, cur);
    return true;
  }

  /** Applies a patch of this node's own peer, if the entry is still that peer's. */
  localUpdate(entry: PresenceEntry): void {
    const cur = this.#byKey.get(entry.key);
    if (!cur || cur.peer.id !== entry.peer.id) return;
    this.#put(entry, cur);
  }

  /** Removes this node's own peer, if the entry is still that peer's. */
  localLeave(key: string, peerId: string, reason: string): void {
    const cur = this.#byKey.get(key);
    if (!cur || cur.peer.id !== peerId) return;
    this.#remove(cur, reason);
  }

  /** Applies one event of the feed (events of this node are the hub's, applied already). */
  apply(e: ClusterEvent): void {
    if (e.v !== 1) return;
    if (e.t === 'leave') {
      if (e.node === this.#nodeId) return;
      const cur = this.#byKey.get(e.key);
      if (cur && cur.epoch === e.epoch) this.#remove(cur, e.reason);
      return;
    }
    if (e.t !== 'join' && e.t !== 'update') return;
    const entry = e.entry;
    if (entry.node === this.#nodeId) return;
    this.#heard(entry.node);
    const cur = this.#byKey.get(entry.key);
    if (cur && (e.t === 'join' ? entry.epoch <= cur.epoch : entry.epoch < cur.epoch)) return;
    this.#put(entry, cur);
  }

  /** Re-reads the live nodes; entries of nodes that left the list are hidden, of returning ones shown. */
  async refreshNodes(): Promise<void> {
    const heard = new Set<string>();
    this.#heardDuringRefresh = heard;
    let records: NodeRecord[];
    try {
      records = await this.#presence.nodes();
    } finally {
      if (this.#heardDuringRefresh === heard) this.#heardDuringRefresh = null;
    }
    const before = new Set(this.#live.keys());
    const next = new Map<string, NodeRecord | null>();
    next.set(this.#nodeId, records.find((r) => r.id === this.#nodeId) ?? this.#live.get(this.#nodeId) ?? null);
    for (const r of records) next.set(r.id, r);
    for (const id of heard) if (!next.has(id)) next.set(id, this.#live.get(id) ?? null);
    this.#setLive(next, before);
  }

  #setLive(next: Map<string, NodeRecord | null>, before: Set<string>): void {
    const wasVisible = (e: PresenceEntry) => e.node === this.#nodeId || before.has(e.node);
    this.#live = next;
    for (const id of before) if (!next.has(id)) this.#log('warn', 'signaling node lost: its peers are hidden', { node: id });
    if (!this.#ready) return;
    for (const e of this.#byKey.values()) {
      const was = wasVisible(e);
      const now = this.#visible(e);
      if (was && !now) this.#emit({ t: 'leave', entry: e, reason: 'node-lost' });
      else if (!was && now) this.#emit({ t: 'join', entry: e });
    }
  }

  #heard(node: string): void {
    this.#heardDuringRefresh?.add(node);
    if (this.#live.has(node)) return;
    // A join or update is proof of life: a node that just started is shown before the next read.
    const before = new Set(this.#live.keys());
    const next = new Map(this.#live);
    next.set(node, null);
    this.#setLive(next, before);
  }

  async #load(reset: boolean): Promise<void> {
    this.#stopTail?.();
    this.#stopTail = null;
    const snap = await this.#presence.snapshot();
    if (this.#closed) return;
    // This node's own entries are what the hub holds, not what the store remembers.
    const own = [...this.#byKey.values()].filter((e) => e.node === this.#nodeId);
    const visibleBefore = reset ? new Map([...this.#byKey].filter(([, e]) => this.#visible(e))) : new Map<string, PresenceEntry>();
    this.#byKey.clear();
    this.#byPeer.clear();
    for (const e of snap.entries) {
      if (e.node === this.#nodeId) continue;
      this.#byKey.set(e.key, e);
      this.#byPeer.set(e.peer.id, e);
    }
    for (const e of own) {
      const other = this.#byKey.get(e.key);
      // Another node took the key over while the feed was lost: the hub must let ours go.
      if (other && other.epoch > e.epoch) {
        if (reset) this.#emit({ t: 'fenced', entry: e, by: other });
        continue;
      }
      if (other) this.#byPeer.delete(other.peer.id);
      this.#byKey.set(e.key, e);
      this.#byPeer.set(e.peer.id, e);
    }
    this.#stopTail = this.#presence.tail(snap.cursor, (e) => this.apply(e), () => {
      this.#log('warn', 'presence feed lost: taking a new snapshot');
      void this.resync().catch((err: unknown) => this.#log('error', 'presence resync failed', { err: String(err) }));
    });
    if (reset) {
      const changed = visibleBefore.size !== this.#byKey.size || [...this.#byKey.values()].some((e) => visibleBefore.get(e.key)?.epoch !== e.epoch);
      this.#log('info', 'presence directory rebuilt', { entries: this.#byKey.size, changed });
      this.#emit({ t: 'reset' });
    }
  }

  #put(entry: PresenceEntry, cur: PresenceEntry | undefined): void {
    this.#byKey.set(entry.key, entry);
    if (cur && cur.peer.id !== entry.peer.id) this.#byPeer.delete(cur.peer.id);
    this.#byPeer.set(entry.peer.id, entry);
    const curVisible = cur !== undefined && this.#visible(cur);
    if (!this.#visible(entry)) {
      if (curVisible && cur.peer.id !== entry.peer.id) this.#emit({ t: 'leave', entry: cur, reason: 'replaced' });
      return;
    }
    if (!curVisible) return this.#emit({ t: 'join', entry });
    if (cur.peer.id === entry.peer.id) return this.#emit({ t: 'update', entry, prev: cur });
    // The newest registration wins: its join first, so an ingress keyed by host id only moves
    // its link to the new peer id, then the old peer's leave.
    this.#emit({ t: 'join', entry });
    this.#emit({ t: 'leave', entry: cur, reason: 'replaced' });
    if (cur.node === this.#nodeId && entry.node !== this.#nodeId) this.#emit({ t: 'fenced', entry: cur, by: entry });
  }

  #remove(cur: PresenceEntry, reason: string): void {
    this.#byKey.delete(cur.key);
    if (this.#byPeer.get(cur.peer.id) === cur) this.#byPeer.delete(cur.peer.id);
    if (this.#visible(cur)) this.#emit({ t: 'leave', entry: cur, reason });
  }

  #visible(e: PresenceEntry): boolean {
    return e.node === this.#nodeId || this.#live.has(e.node);
  }

  #emit(c: DirectoryChange): void {
    for (const l of [...this.#listeners]) l(c);
  }
}
