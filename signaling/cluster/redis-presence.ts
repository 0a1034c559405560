/**
 * The cluster's presence directory in Redis (SCALE-OUT.md §3.3-3.5, docs/cluster-redis.md):
 * entries with leases, one epoch counter for fencing, a node heartbeat, a janitor on every
 * node, and an events stream every node tails. Each write is one Lua script (redis-scripts.ts)
 * that also appends its event, so the directory and the feed can never disagree.
 *
 * @example
 * ```ts
 * const presence = await RedisPresence.connect({ url: 'redis://10.0.0.2:6379', clusterName: 'main', nodeId: 's1', region: 'eu' });
 * const { epoch } = await presence.register(entry, { volunteerCap: 8 });
 * ```
 */
import type { AppStatus, PeerInfo } from '../../protocol/index.ts';
import { RedisLink, scriptError, type RedisLinkOptions } from './redis-link.ts';
import { StreamReader, streamInfo, type Fields } from './stream-reader.ts';
import {
  PresenceLimitError,
  PresenceUnavailableError,
  type ClusterEvent,
  type NodeRecord,
  type PresenceEntry,
  type PresenceStore,
} from './types.ts';

export interface RedisPresenceOptions {
  region: string;
  /** Where operators and tabs reach this node, when it advertises one (NodeRecord.url). */
  advertiseUrl?: string;
}

export class RedisPresence implements PresenceStore {
  readonly #link: RedisLink;
  readonly #reader: StreamReader;
  readonly #ownsLink: boolean;
  readonly #region: string;
  readonly #url: string;
  readonly #startedAt = Date.now();
  #cv = 0;
  #peers = 0;
  #heartbeatTimer: NodeJS.Timeout | null = null;
  #janitorTimer: NodeJS.Timeout | null = null;
  #janitorBusy = false;
  #closed = false;

  /** Use {@link RedisPresence.connect}, or connectRedisCluster (redis.ts) for all the parts on shared connections. */
  constructor(link: RedisLink, reader: StreamReader, opts: RedisPresenceOptions & { ownsLink?: boolean }) {
    this.#link = link;
    this.#reader = reader;
    this.#ownsLink = opts.ownsLink ?? false;
    this.#region = opts.region;
    this.#url = opts.advertiseUrl ?? '';
    // A new dataset has no record of this node: write it back at once, not at the next beat.
    link.onGenChange(() => void this.#heartbeat().catch(() => undefined));
  }

  /** Opens its own connections and starts the node's heartbeat and janitor. */
  static async connect(opts: RedisLinkOptions & RedisPresenceOptions): Promise<RedisPresence> {
    const link = await RedisLink.open(opts);
    const presence = new RedisPresence(link, new StreamReader(link), { ...opts, ownsLink: true });
    try {
      await presence.start();
    } catch (err) {
      await presence.close();
      throw err;
    }
    return presence;
  }

  /** Writes the node record (the node is live from here on) and starts the heartbeat and janitor timers. */
  async start(): Promise<void> {
    await this.#heartbeat();
    const t = this.#link.timings;
    this.#heartbeatTimer = setInterval(() => void this.#heartbeat().catch(() => undefined), t.heartbeatIntervalMs);
    this.#janitorTimer = setInterval(() => void this.#janitor(), t.janitorIntervalMs);
    this.#heartbeatTimer.unref();
    this.#janitorTimer.unref();
  }

  register(e: Omit<PresenceEntry, 'epoch'>, opts: { volunteerCap?: number }): Promise<{ epoch: number; replaced?: { peer: string; node: string } }> {
    return this.#register(e, opts.volunteerCap ?? 0, false).then((r) => r!);
  }

  async reclaim(e: Omit<PresenceEntry, 'epoch'>): Promise<{ epoch: number } | null> {
    const r = await this.#register(e, 0, true);
    return r && { epoch: r.epoch };
  }

  async #register(e: Omit<PresenceEntry, 'epoch'>, cap: number, nx: boolean): Promise<{ epoch: number; replaced?: { peer: string; node: string } } | null> {
    const link = this.#link;
    const t = link.timings;
    for (let attempt = 0; ; attempt++) {
      let reply: [number, string, string];
      try {
        reply = (await link.script(nx ? 'reclaim' : 'register', 'dcdnRegister',
          link.gen, e.key, e.node, e.region, JSON.stringify(e.peer), e.peer.id, e.address,
          e.status ? JSON.stringify(e.status) : '', e.peer.volunteer ? '1' : '0', cap, nx ? '1' : '0',
          t.entryLeaseMs, t.leaseGraceMs, t.nodeLeaseMs + t.leaseGraceMs, t.eventsMaxLen)) as typeof reply;
      } catch (err) {
        const code = scriptError(err);
        if (code === null) throw err;
        if (code === 'DCDN_LIMIT') throw new PresenceLimitError(`too many volunteers from ${e.address} (cap ${cap})`);
        // DCDN_GEN: Redis is new. Adopt the new generation, put this node back, and try once more.
        if (attempt > 0) throw new PresenceUnavailableError('cluster: the Redis dataset generation keeps changing');
        await link.initGen();
        await this.#heartbeat();
        continue;
      }
      if (reply[0] === -1) return null;
      return { epoch: Number(reply[0]), ...(reply[1] !== '' && { replaced: { peer: reply[1], node: reply[2] } }) };
    }
  }

  async unregister(key: string, epoch: number, reason: string): Promise<boolean> {
    const done = await this.#link.script('unregister', 'dcdnUnregister', key, String(epoch), reason, this.#link.timings.eventsMaxLen);
    return done === 1;
  }

  async update(key: string, epoch: number, patch: Partial<Pick<PresenceEntry, 'peer' | 'status'>>): Promise<boolean> {
    const done = await this.#link.script('update', 'dcdnUpdate', key, String(epoch),
      patch.peer ? JSON.stringify(patch.peer) : '', patch.peer?.id ?? '',
      patch.status ? JSON.stringify(patch.status) : '', this.#link.timings.eventsMaxLen);
    return done === 1;
  }

  async renew(own: Array<{ key: string; epoch: number }>, node: { cv: number; peers: number }): Promise<{ fenced: string[]; missing: string[]; genChanged: boolean }> {
    const link = this.#link;
    const t = link.timings;
    this.#cv = node.cv;
    this.#peers = node.peers;
    await this.#heartbeat();
    const batches: Array<Promise<unknown>> = [];
    for (let i = 0; i < own.length; i += t.batch) {
      const args = own.slice(i, i + t.batch).flatMap((o) => [o.key, String(o.epoch)]);
      // Sent back to back on one connection: one round trip for all the batches.
      batches.push(link.script('renew', 'dcdnRenew', link.gen, t.entryLeaseMs, t.leaseGraceMs, ...args));
    }
    const replies = (await Promise.all(batches)) as Array<[number, string[]?, string[]?]>;
    const fenced: string[] = [];
    const missing: string[] = [];
    let newGen = false;
    for (const r of replies) {
      if (r[0] === 0) newGen = true;
      else fenced.push(...r[1]!), missing.push(...r[2]!);
    }
    if (newGen) await link.initGen();
    // A new generation means every key is gone: the caller reclaims them all, so none is listed.
    if (link.takeGenChanged()) return { fenced: [], missing: [], genChanged: true };
    return { fenced, missing, genChanged: false };
  }

  async snapshot(): Promise<{ entries: PresenceEntry[]; cursor: string; gen: string }> {
    const link = this.#link;
    const gen = await link.call('snapshot', link.cmd.get(link.key('gen')));
    if (gen !== link.gen) await link.initGen();
    // The cursor first: an entry written after it is also in the stream after it, and replay is idempotent by epoch.
    const cursor = await lastId(link, link.key('events'));
    const keys = (await link.script('snapshot', 'dcdnLiveKeys', link.settlingSlackMs())) as string[];
    const entries: PresenceEntry[] = [];
    for (let i = 0; i < keys.length; i += link.timings.batch) {
      const chunk = keys.slice(i, i + link.timings.batch);
      const hashes = await Promise.all(chunk.map((k) => link.call('snapshot', link.cmd.hgetall(link.key(`p:${k}`)))));
      chunk.forEach((k, j) => {
        const entry = entryFromHash(k, hashes[j]!);
        if (entry) entries.push(entry);
      });
    }
    return { entries, cursor, gen: link.gen };
  }

  tail(cursor: string, onEvent: (e: ClusterEvent, cursor: string) => void, onReset: () => void): () => void {
    return this.#reader.addTail(
      cursor,
      (id, fields) => {
        const event = eventFromFields(fields);
        if (event) onEvent(event, id);
      },
      onReset,
    );
  }

  async nodes(): Promise<NodeRecord[]> {
    const reply = (await this.#link.script('nodes', 'dcdnNodes', this.#link.settlingSlackMs())) as Array<[string, string[]]>;
    return reply.map(([id, flat]) => {
      const h = pairs(flat);
      return {
        id,
        region: h.region ?? '',
        cv: Number(h.cv ?? 0),
        startedAt: Number(h.startedAt ?? 0),
        peers: Number(h.peers ?? 0),
        ...(h.url ? { url: h.url } : {}),
      };
    });
  }

  async countVolunteers(address: string): Promise<number> {
    return Number(await this.#link.script('countVolunteers', 'dcdnCountVolunteers', address));
  }

  /**
   * Stops the heartbeat and janitor without unregistering anything: the hub unregisters its
   * peers first. The node's lease is marked run out, so another node's janitor removes whatever
   * is left within one tick instead of one lease.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeatTimer) clearInterval(this.#heartbeatTimer);
    if (this.#janitorTimer) clearInterval(this.#janitorTimer);
    if (!this.#link.closed) await this.#link.script('close', 'dcdnExpireNode', this.#link.nodeId).catch(() => undefined);
    if (this.#ownsLink) {
      await this.#reader.close();
      await this.#link.close();
    }
  }

  /** The node's lease, record, keys set and inbox TTL; adopts a new generation when Redis is new. */
  async #heartbeat(): Promise<void> {
    if (this.#closed) return;
    const link = this.#link;
    const t = link.timings;
    for (let attempt = 0; attempt < 2; attempt++) {
      const ok = await link.script('heartbeat', 'dcdnHeartbeat', link.gen, link.nodeId, this.#region, this.#startedAt, this.#cv, this.#peers, this.#url,
        t.nodeLeaseMs, t.nodeLeaseMs + t.leaseGraceMs, t.inboxTtlMs);
      if (ok === 1) return;
      await link.initGen();
    }
  }

  /** Every node runs it; a lock per dead node keeps two from reaping the same one. */
  async #janitor(): Promise<void> {
    if (this.#janitorBusy || this.#closed) return;
    const link = this.#link;
    const t = link.timings;
    // Right after an outage every lease looks run out by Redis's clock: wait until the live
    // nodes have heartbeat and renewed (or reclaimed) again, else the janitor would remove the
    // whole cluster's entries and have every node put them back (churn every peer sees).
    if (link.settlingSlackMs() > 0) return;
    const outages = link.outages;
    const unsettled = () => link.outages !== outages || link.settlingSlackMs() > 0;
    this.#janitorBusy = true;
    try {
      const dead = (await link.script('janitor', 'dcdnDeadNodes', link.nodeId, 100)) as string[];
      for (const node of dead) {
        if (unsettled()) return;
        const locked = await link.call('janitor', link.cmd.set(link.key(`janitor:${node}`), link.nodeId, 'PX', t.janitorLockMs, 'NX'));
        if (locked !== 'OK') continue;
        let removed = 0;
        for (;;) {
          if (unsettled()) return;
          const [n, done] = (await link.script('janitor', 'dcdnReapNode', node, t.batch, t.eventsMaxLen)) as [number, number];
          if (n === -1) break; // it renewed its lease: frozen, not dead
          removed += n;
          if (done === 1) {
            link.log('warn', 'cluster: signaling node lost; its peers were removed from the directory', { node, removed, by: link.nodeId });
            break;
          }
        }
      }
      for (;;) {
        if (unsettled()) return;
        const swept = (await link.script('janitor', 'dcdnSweepLeases', t.batch, t.eventsMaxLen)) as string[];
        for (let i = 0; i + 1 < swept.length; i += 2) {
          // The owner is alive but stopped renewing: a bug in its bookkeeping, or it was frozen.
          link.log('warn', 'cluster: presence lease expired without renewal; entry removed', { key: swept[i], owner: swept[i + 1], by: link.nodeId });
        }
        if (swept.length / 2 < t.batch) break;
      }
    } catch {
      // Redis trouble is logged by the link; the next tick tries again.
    } finally {
      this.#janitorBusy = false;
    }
  }
}

/** The stream's last id (`0-0` when there is none yet): where a tail after a snapshot starts. */
async function lastId(link: RedisLink, key: string): Promise<string> {
  return String((await streamInfo(link, key)).get('last-generated-id') ?? '0-0');
}

function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

function entryFromHash(key: string, h: Record<string, string>): PresenceEntry | null {
  if (!h.epoch || !h.peer) return null; // removed between listing and reading
  try {
    return {
      key,
      epoch: Number(h.epoch),
      node: h.node ?? '',
      region: h.region ?? '',
      peer: JSON.parse(h.peer) as PeerInfo,
      address: h.addr ?? '',
      ...(h.status ? { status: JSON.parse(h.status) as AppStatus[] } : {}),
    };
  } catch {
    return null;
  }
}

/** An events-stream entry as a ClusterEvent; null for what this version does not know (skipped). */
export function eventFromFields(f: Fields): ClusterEvent | null {
  if (f.get('v') !== '1') return null;
  const key = f.get('k') ?? '';
  const epoch = Number(f.get('e'));
  const node = f.get('n') ?? '';
  try {
    switch (f.get('t')) {
      case 'join':
      case 'update': {
        const st = f.get('st');
        const entry: PresenceEntry = {
          key,
          epoch,
          node,
          region: f.get('r') ?? '',
          peer: JSON.parse(f.get('peer') ?? 'null') as PeerInfo,
          address: f.get('a') ?? '',
          ...(st ? { status: JSON.parse(st) as AppStatus[] } : {}),
        };
        if (f.get('t') === 'update') return { v: 1, t: 'update', entry };
        const rp = f.get('rp');
        return { v: 1, t: 'join', entry, ...(rp ? { replaced: { peer: rp, node: f.get('rn') ?? '' } } : {}) };
      }
      case 'leave':
        return { v: 1, t: 'leave', key, peer: f.get('peer') ?? '', epoch, node, reason: f.get('reason') ?? '' };
      default:
        return null;
    }
  } catch {
    return null;
  }
}
