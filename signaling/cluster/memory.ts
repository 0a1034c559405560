/**
 * The single-machine cluster parts (SCALE-OUT.md §3.2): presence in a Map, a loopback bus and
 * local rate limits. They keep the semantics the Redis parts have, so the hub takes one path:
 * epochs from one counter, the newest registration of a key wins and names the one it replaced,
 * `unregister` and `update` act only at the current epoch, `renew` reports fenced and missing
 * keys, and the volunteers-per-address cap is enforced inside `register`.
 *
 * Events are delivered synchronously, inside the call that caused them, so a join reaches every
 * listener before the register promise resolves (today's join-before-signal timing).
 *
 * @example
 * ```ts
 * const parts = createMemoryCluster({ nodeId: 'local', region: 'default' });
 * const { epoch } = await parts.presence.register(entry, {});
 * ```
 */
import { randomBytes } from 'node:crypto';
import { TokenBucket } from '../../protocol/index.ts';
import {
  PresenceLimitError,
  PresenceUnavailableError,
  type BusMessage,
  type ClusterEvent,
  type ClusterParts,
  type EphemeralStore,
  type NodeBus,
  type NodeRecord,
  type PresenceEntry,
  type PresenceStore,
  type Rate,
} from './types.ts';

/** How many past events a `tail` may resume from; an older cursor gets `onReset`. */
export const MEMORY_EVENT_LOG = 10_000;

/** Presence for one signaling node: every peer is local, so there is no lease to run out. */
export class MemoryPresence implements PresenceStore {
  readonly #node: NodeRecord;
  readonly #entries = new Map<string, PresenceEntry>();
  readonly #tails = new Set<(e: ClusterEvent, cursor: string) => void>();
  /** The last {@link MEMORY_EVENT_LOG} events, with their sequence numbers. */
  readonly #log: Array<{ seq: number; event: ClusterEvent }> = [];
  readonly #gen = randomBytes(8).toString('hex');
  #epoch = 0;
  #seq = 0;
  #closed = false;

  constructor(opts: { nodeId: string; region: string }) {
    this.#node = { id: opts.nodeId, region: opts.region, cv: 0, startedAt: Date.now(), peers: 0 };
  }

  async register(e: Omit<PresenceEntry, 'epoch'>, opts: { volunteerCap?: number }): Promise<{ epoch: number; replaced?: { peer: string; node: string } }> {
    this.#open();
    if (e.peer.volunteer && opts.volunteerCap !== undefined && this.#volunteers(e.address, e.key) >= opts.volunteerCap) {
      throw new PresenceLimitError(`at most ${opts.volunteerCap} volunteer hosts may connect from one address`);
    }
    return this.#put(e);
  }

  async reclaim(e: Omit<PresenceEntry, 'epoch'>): Promise<{ epoch: number } | null> {
    this.#open();
    // The same connection is no other holder: a register that timed out on the caller may have run.
    const cur = this.#entries.get(e.key);
    if (cur && cur.peer.id !== e.peer.id) return null;
    return { epoch: this.#put(e).epoch };
  }

  async unregister(key: string, epoch: number, reason: string): Promise<boolean> {
    this.#open();
    const cur = this.#entries.get(key);
    if (!cur || cur.epoch !== epoch) return false;
    this.#entries.delete(key);
    this.#emit({ v: 1, t: 'leave', key, peer: cur.peer.id, epoch, node: cur.node, reason });
    return true;
  }

  async update(key: string, epoch: number, patch: Partial<Pick<PresenceEntry, 'peer' | 'status'>>): Promise<boolean> {
    this.#open();
    const cur = this.#entries.get(key);
    if (!cur || cur.epoch !== epoch) return false;
    const next: PresenceEntry = { ...cur, ...(patch.peer ? { peer: patch.peer } : {}), ...(patch.status ? { status: patch.status } : {}) };
    this.#entries.set(key, next);
    this.#emit({ v: 1, t: 'update', entry: next });
    return true;
  }

  async renew(own: Array<{ key: string; epoch: number }>, node: { cv: number; peers: number }): Promise<{ fenced: string[]; missing: string[]; genChanged: boolean }> {
    this.#open();
    this.#node.cv = node.cv;
    this.#node.peers = node.peers;
    const fenced: string[] = [];
    const missing: string[] = [];
    for (const { key, epoch } of own) {
      const cur = this.#entries.get(key);
      if (!cur) missing.push(key);
      else if (cur.epoch !== epoch) fenced.push(key);
    }
    return { fenced, missing, genChanged: false };
  }

  async snapshot(): Promise<{ entries: PresenceEntry[]; cursor: string; gen: string }> {
    this.#open();
    return { entries: [...this.#entries.values()], cursor: String(this.#seq), gen: this.#gen };
  }

  tail(cursor: string, onEvent: (e: ClusterEvent, cursor: string) => void, onReset: () => void): () => void {
    const from = Number(cursor);
    // The first event kept; a cursor before the one preceding it has missed events.
    const firstKept = this.#log[0]?.seq ?? this.#seq + 1;
    if (!Number.isInteger(from) || from > this.#seq || from < firstKept - 1) {
      queueMicrotask(onReset);
    } else {
      for (const { seq, event } of this.#log) if (seq > from) onEvent(event, String(seq));
    }
    this.#tails.add(onEvent);
    return () => this.#tails.delete(onEvent);
  }

  async nodes(): Promise<NodeRecord[]> {
    this.#open();
    return [{ ...this.#node }];
  }

  async countVolunteers(address: string): Promise<number> {
    this.#open();
    return this.#volunteers(address, null);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#tails.clear();
  }

  #put(e: Omit<PresenceEntry, 'epoch'>): { epoch: number; replaced?: { peer: string; node: string } } {
    const cur = this.#entries.get(e.key);
    const epoch = ++this.#epoch;
    const entry: PresenceEntry = { ...e, epoch };
    // Delete first so the Map's order is registration order (oldest first).
    this.#entries.delete(e.key);
    this.#entries.set(e.key, entry);
    const replaced = cur && cur.peer.id !== e.peer.id ? { peer: cur.peer.id, node: cur.node } : undefined;
    this.#emit({ v: 1, t: 'join', entry, ...(replaced ? { replaced } : {}) });
    return replaced ? { epoch, replaced } : { epoch };
  }

  #volunteers(address: string, exceptKey: string | null): number {
    let n = 0;
    for (const entry of this.#entries.values()) if (entry.peer.volunteer && entry.address === address && entry.key !== exceptKey) n++;
    return n;
  }

  #emit(event: ClusterEvent): void {
    const seq = ++this.#seq;
    this.#log.push({ seq, event });
    if (this.#log.length > MEMORY_EVENT_LOG) this.#log.shift();
    for (const tail of [...this.#tails]) tail(event, String(seq));
  }

  #open(): void {
    if (this.#closed) throw new PresenceUnavailableError('the presence store is closed');
  }
}

/** One node's bus: it can only reach itself (on one machine every peer is local). */
export class LoopbackBus implements NodeBus {
  readonly #nodeId: string;
  readonly #handlers: Array<(m: BusMessage, from: string) => void> = [];
  #closed = false;

  constructor(nodeId: string) {
    this.#nodeId = nodeId;
  }

  async send(node: string, m: BusMessage): Promise<void> {
    if (this.#closed || node !== this.#nodeId) throw new PresenceUnavailableError(`no route to signaling node ${node}`);
    // Delivered on a later tick, like a message over a real bus.
    queueMicrotask(() => {
      for (const h of this.#handlers) h(m, this.#nodeId);
    });
  }

  onMessage(h: (m: BusMessage, from: string) => void): void {
    this.#handlers.push(h);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** Most rate-limit subjects kept at once; past it the oldest half is forgotten (they refill anyway). */
export const MAX_MEMORY_BUCKETS = 10_000;

/** Check candidates with a TTL and token buckets, in this process. */
export class MemoryEphemeral implements EphemeralStore {
  readonly #candidates = new Map<string, { value: unknown; expiresAt: number; timer: ReturnType<typeof setTimeout> }>();
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async putCandidate(id: string, candidate: unknown, ttlMs: number): Promise<void> {
    const old = this.#candidates.get(id);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => this.#candidates.delete(id), ttlMs);
    timer.unref?.();
    this.#candidates.set(id, { value: candidate, expiresAt: this.#now() + ttlMs, timer });
  }

  async getCandidate(id: string): Promise<unknown | null> {
    const c = this.#candidates.get(id);
    if (!c || c.expiresAt <= this.#now()) return null;
    return c.value;
  }

  async take(bucket: string, rate: Rate): Promise<boolean> {
    const name = `${bucket}\0${rate.perSecond}\0${rate.burst}`;
    let b = this.#buckets.get(name);
    if (!b) {
      if (this.#buckets.size >= MAX_MEMORY_BUCKETS) {
        let drop = MAX_MEMORY_BUCKETS / 2;
        for (const k of this.#buckets.keys()) {
          if (drop-- <= 0) break;
          this.#buckets.delete(k);
        }
      }
      b = new TokenBucket(rate, this.#now);
      this.#buckets.set(name, b);
    }
    return b.take();
  }

  clear(): void {
    for (const c of this.#candidates.values()) clearTimeout(c.timer);
    this.#candidates.clear();
    this.#buckets.clear();
  }
}

/** The single-machine cluster parts: `dcdn up` and a lone `dcdn signal` (no service needed). */
export function createMemoryCluster(opts: { nodeId: string; region: string }): ClusterParts {
  const presence = new MemoryPresence(opts);
  const bus = new LoopbackBus(opts.nodeId);
  const ephemeral = new MemoryEphemeral();
  return {
    nodeId: opts.nodeId,
    region: opts.region,
    kind: 'memory',
    presence,
    bus,
    ephemeral,
    async close() {
      ephemeral.clear();
      await Promise.all([presence.close(), bus.close()]);
    },
  };
}
