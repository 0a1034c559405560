/**
 * The PresenceStore contract (signaling/cluster/types.ts, SCALE-OUT.md §3.4), run against every
 * implementation: `presenceSuite('RedisPresence', harness)` in redis-presence.test.ts,
 * `presenceSuite('MemoryPresence', harness)` in memory-presence.test.ts. What a backend cannot
 * do (several nodes on one directory, leases, a flush) its harness leaves out, and those tests
 * are skipped for it.
 *
 * Every wait is for an event (a `leave`, an onReset), bounded by `WAIT_MS`, never a sleep.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AppStatus, PeerInfo } from '../protocol/index.ts';
import { PresenceLimitError, type ClusterEvent, type PresenceEntry, type PresenceStore } from '../signaling/cluster/types.ts';

/** The longest any awaited event may take: far above every configured bound, so only a bug trips it. */
export const WAIT_MS = 15_000;

export interface SuiteNode {
  nodeId: string;
  region?: string;
  /** The node stops heartbeating after its first beat: a frozen or killed machine. */
  frozen?: boolean;
  /** Entries of this node expire after the harness's short lease unless renewed. */
  shortEntryLease?: boolean;
}

export interface PresenceHarness {
  /** A store for one signaling node; stores of one harness share one directory. */
  open(node: SuiteNode): Promise<PresenceStore>;
  /** Several node ids on one directory (a cluster backend): fencing across nodes, the janitor. */
  multiNode: boolean;
  /** Leases and a janitor (SuiteNode.frozen and shortEntryLease take effect). */
  leases: boolean;
  /** Empties the backend as an empty Redis restart would; absent where there is none. */
  flush?: () => Promise<void>;
  /** Closes what open() opened. */
  close(): Promise<void>;
}

let peers = 0;
/** A peer as the hub registers it. */
export function peerInfo(over: Partial<PeerInfo> = {}): PeerInfo {
  return { id: `peer-${++peers}`, role: 'host', info: { name: 'test' }, since: 1_700_000_000_000, ...over };
}

export function entry(key: string, node: string, over: Partial<Omit<PresenceEntry, 'epoch'>> = {}): Omit<PresenceEntry, 'epoch'> {
  return { key, node, region: 'r1', peer: peerInfo(), address: '192.0.2.1', ...over };
}

/** Tails a store and lets a test wait for the event it expects. */
export function watch(store: PresenceStore, cursor: string) {
  const events: ClusterEvent[] = [];
  let resets = 0;
  const waiters = new Set<() => void>();
  const poke = () => {
    for (const w of [...waiters]) w();
  };
  const stop = store.tail(
    cursor,
    (e) => {
      events.push(e);
      poke();
    },
    () => {
      resets++;
      poke();
    },
  );
  const until = (what: string, ok: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (!ok()) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events.map(brief))}`));
      }, WAIT_MS);
      waiters.add(check);
      check();
    });
  return {
    events,
    get resets() {
      return resets;
    },
    stop,
    /** Resolves with the first event (from the start of the tail) that matches. */
    async event(what: string, match: (e: ClusterEvent) => boolean): Promise<ClusterEvent> {
      await until(what, () => events.some(match));
      return events.find(match)!;
    },
    reset: () => until('onReset', () => resets > 0),
  };
}

function brief(e: ClusterEvent): string {
  return e.t === 'leave' ? `leave ${e.key}@${e.epoch} ${e.reason}` : `${e.t} ${e.entry.key}@${e.entry.epoch}`;
}

/** The directory a consumer builds from a snapshot and events, by the epoch rules of §3.4.3. */
export function apply(dir: Map<string, PresenceEntry>, e: ClusterEvent): void {
  if (e.t === 'leave') {
    if (dir.get(e.key)?.epoch === e.epoch) dir.delete(e.key);
    return;
  }
  const cur = dir.get(e.entry.key);
  if (!cur || e.entry.epoch > cur.epoch || (e.t === 'update' && e.entry.epoch === cur.epoch)) dir.set(e.entry.key, e.entry);
}

const byKey = (entries: PresenceEntry[]) => new Map(entries.map((e) => [e.key, e]));

export function presenceSuite(name: string, makeStore: () => Promise<PresenceHarness>): void {
  describe(`PresenceStore contract: ${name}`, () => {
    let harness: PresenceHarness | undefined;
    const open = async (node: SuiteNode) => {
      harness ??= await makeStore();
      return harness.open(node);
    };
    const caps = async () => {
      harness ??= await makeStore();
      return harness;
    };
    afterEach(async () => {
      await harness?.close();
      harness = undefined;
    });

    it('registers a peer: the epoch, the snapshot and the join event agree', async () => {
      const a = await open({ nodeId: 'a' });
      const before = await a.snapshot();
      const w = watch(a, before.cursor);
      const e = entry('h:one', 'a', { status: [{ name: 'x', version: 1, state: 'serving' }] });
      const { epoch, replaced } = await a.register(e, {});
      expect(epoch).toBeGreaterThan(0);
      expect(replaced).toBeUndefined();
      const snap = await a.snapshot();
      expect(snap.entries).toEqual([{ ...e, epoch }]);
      const join = await w.event('join h:one', (x) => x.t === 'join' && x.entry.key === 'h:one');
      // This node's own events too: consumers skip what they applied already.
      expect(join).toEqual({ v: 1, t: 'join', entry: { ...e, epoch } });
      w.stop();
    });

    it('fences an older registration of the same key: the newest wins and names the replaced peer', async () => {
      const h = await caps();
      const a = await open({ nodeId: 'a' });
      const b = h.multiNode ? await open({ nodeId: 'b' }) : a;
      const w = watch(b, (await b.snapshot()).cursor);
      const first = entry('h:dup', 'a');
      const second = entry('h:dup', h.multiNode ? 'b' : 'a');
      const e1 = await a.register(first, {});
      const e2 = await b.register(second, {});
      expect(e2.epoch).toBeGreaterThan(e1.epoch);
      expect(e2.replaced).toEqual({ peer: first.peer.id, node: 'a' });
      expect((await b.snapshot()).entries).toEqual([{ ...second, epoch: e2.epoch }]);
      const join = await w.event('second join', (x) => x.t === 'join' && x.entry.epoch === e2.epoch);
      expect(join).toMatchObject({ replaced: { peer: first.peer.id, node: 'a' } });
      // The old owner learns it on its next renew, and closes its stale connection.
      const renewed = await a.renew([{ key: 'h:dup', epoch: e1.epoch }], { cv: 0, peers: 1 });
      expect(renewed).toEqual({ fenced: ['h:dup'], missing: [], genChanged: false });
      w.stop();
    });

    it('ignores an unregister with a stale epoch, and removes the entry with the current one', async () => {
      const a = await open({ nodeId: 'a' });
      const w = watch(a, (await a.snapshot()).cursor);
      const e1 = await a.register(entry('h:k', 'a'), {});
      const e2 = await a.register(entry('h:k', 'a'), {});
      expect(await a.unregister('h:k', e1.epoch, 'closed')).toBe(false);
      expect((await a.snapshot()).entries.map((x) => x.epoch)).toEqual([e2.epoch]);
      expect(await a.unregister('h:k', e2.epoch, 'closed')).toBe(true);
      expect((await a.snapshot()).entries).toEqual([]);
      const leave = await w.event('leave', (x) => x.t === 'leave');
      expect(leave).toMatchObject({ t: 'leave', key: 'h:k', epoch: e2.epoch, node: 'a', reason: 'closed' });
      expect(w.events.filter((x) => x.t === 'leave')).toHaveLength(1);
      w.stop();
    });

    it('updates peer info and status at the current epoch only', async () => {
      const a = await open({ nodeId: 'a' });
      const w = watch(a, (await a.snapshot()).cursor);
      const e = entry('h:u', 'a');
      const { epoch } = await a.register(e, {});
      const drained: PeerInfo = { ...e.peer, draining: true };
      const status: AppStatus[] = [{ name: 'echo', version: 2, state: 'serving' }];
      expect(await a.update('h:u', epoch - 1, { status })).toBe(false);
      expect(await a.update('h:u', epoch, { peer: drained, status })).toBe(true);
      const [snap] = (await a.snapshot()).entries;
      expect(snap).toEqual({ ...e, epoch, peer: drained, status });
      const update = await w.event('update', (x) => x.t === 'update');
      expect(update).toEqual({ v: 1, t: 'update', entry: { ...e, epoch, peer: drained, status } });
      expect(w.events.filter((x) => x.t === 'update')).toHaveLength(1);
      w.stop();
    });

    it('renews current entries and reports the missing ones', async () => {
      const a = await open({ nodeId: 'a' });
      const { epoch } = await a.register(entry('h:live', 'a'), {});
      const r = await a.renew([{ key: 'h:live', epoch }, { key: 'h:gone', epoch: 1 }], { cv: 7, peers: 1 });
      expect(r).toEqual({ fenced: [], missing: ['h:gone'], genChanged: false });
      const nodes = await a.nodes();
      expect(nodes.find((n) => n.id === 'a')).toMatchObject({ id: 'a', cv: 7, peers: 1 });
    });

    it('reclaims a key only when no other connection holds it', async () => {
      const a = await open({ nodeId: 'a' });
      const mine = entry('h:r', 'a');
      const got = await a.reclaim(mine);
      expect(got?.epoch).toBeGreaterThan(0);
      expect(await a.reclaim(entry('h:r', 'a'))).toBeNull();
      expect((await a.snapshot()).entries.map((x) => x.epoch)).toEqual([got!.epoch]);
      // The same connection is no other holder: a register that timed out on the caller may have run.
      const again = await a.reclaim(mine);
      expect(again!.epoch).toBeGreaterThan(got!.epoch);
    });

    it('caps volunteers per address across the directory', async () => {
      const h = await caps();
      const a = await open({ nodeId: 'a' });
      const b = h.multiNode ? await open({ nodeId: 'b' }) : a;
      const vol = (key: string, node: string, address = '198.51.100.7') => entry(key, node, { address, peer: peerInfo({ volunteer: true }) });
      const v1 = await a.register(vol('h:v1', 'a'), { volunteerCap: 2 });
      await b.register(vol('h:v2', h.multiNode ? 'b' : 'a'), { volunteerCap: 2 });
      await expect(a.register(vol('h:v3', 'a'), { volunteerCap: 2 })).rejects.toBeInstanceOf(PresenceLimitError);
      expect(await b.countVolunteers('198.51.100.7')).toBe(2);
      // The same volunteer reconnecting is not a third one; another address and operators' hosts are not counted.
      await a.register(vol('h:v1', 'a'), { volunteerCap: 2 });
      await a.register(vol('h:v9', 'a', '198.51.100.8'), { volunteerCap: 2 });
      await a.register(entry('h:op', 'a', { address: '198.51.100.7' }), { volunteerCap: 2 });
      expect(await a.countVolunteers('198.51.100.7')).toBe(2);
      const [cur] = (await a.snapshot()).entries.filter((x) => x.key === 'h:v1');
      expect(await a.unregister('h:v1', cur!.epoch, 'closed')).toBe(true);
      expect(v1.epoch).toBeLessThan(cur!.epoch);
      await a.register(vol('h:v3', 'a'), { volunteerCap: 2 });
      expect(await a.countVolunteers('198.51.100.7')).toBe(2);
    });

    it('rebuilds the same directory from a snapshot plus its tail, however often events are replayed', async () => {
      const a = await open({ nodeId: 'a' });
      await a.register(entry('h:s1', 'a'), {});
      const early = await a.snapshot();
      const s2 = await a.register(entry('h:s2', 'a'), {});
      const snap = await a.snapshot();
      const s3 = await a.register(entry('h:s3', 'a'), {});
      await a.update('h:s2', s2.epoch, { status: [] });
      await a.unregister('h:s3', s3.epoch, 'closed');
      const s1b = await a.register(entry('h:s1', 'a'), {});
      const final = await a.snapshot();
      // From the later snapshot, and from the earlier cursor (replaying what the snapshot holds).
      for (const cursor of [snap.cursor, early.cursor]) {
        const w = watch(a, cursor);
        await w.event('last join', (x) => x.t === 'join' && x.entry.epoch === s1b.epoch);
        const dir = byKey(snap.entries);
        for (const e of w.events) apply(dir, e);
        for (const e of w.events) apply(dir, e); // a second replay changes nothing
        expect([...dir.values()].sort((x, y) => x.key.localeCompare(y.key))).toEqual(final.entries.sort((x, y) => x.key.localeCompare(y.key)));
        w.stop();
      }
    });

    it('lists live nodes with their region', async () => {
      const h = await caps();
      const a = await open({ nodeId: 'a', region: 'eu' });
      if (h.multiNode) await open({ nodeId: 'b', region: 'us' });
      const nodes = await a.nodes();
      expect(nodes.find((n) => n.id === 'a')).toMatchObject({ id: 'a', region: 'eu' });
      if (h.multiNode) expect(nodes.find((n) => n.id === 'b')).toMatchObject({ id: 'b', region: 'us' });
    });

    it('removes the entries of a node that stopped heartbeating (node-lost), and the node', async (ctx) => {
      const h = await caps();
      if (!h.multiNode || !h.leases) return ctx.skip();
      const watcher = await open({ nodeId: 'watcher' });
      const w = watch(watcher, (await watcher.snapshot()).cursor);
      const frozen = await open({ nodeId: 'frozen', frozen: true });
      const { epoch } = await frozen.register(entry('h:f', 'frozen'), {});
      const leave = await w.event('leave node-lost', (x) => x.t === 'leave' && x.key === 'h:f');
      expect(leave).toMatchObject({ key: 'h:f', epoch, node: 'frozen', reason: 'node-lost' });
      expect((await watcher.nodes()).map((n) => n.id)).not.toContain('frozen');
      expect((await watcher.snapshot()).entries).toEqual([]);
      w.stop();
    });

    it('sweeps an entry whose lease ran out without renewal (lease-expired) while its node lives', async (ctx) => {
      const h = await caps();
      if (!h.leases) return ctx.skip();
      const a = await open({ nodeId: 'a', shortEntryLease: true });
      const w = watch(a, (await a.snapshot()).cursor);
      const { epoch } = await a.register(entry('h:leak', 'a'), {});
      const leave = await w.event('leave lease-expired', (x) => x.t === 'leave' && x.key === 'h:leak');
      expect(leave).toMatchObject({ key: 'h:leak', epoch, node: 'a', reason: 'lease-expired' });
      expect((await a.nodes()).map((n) => n.id)).toContain('a');
      // The owner, renewing late, learns the entry is gone and reclaims it.
      expect(await a.renew([{ key: 'h:leak', epoch }], { cv: 0, peers: 1 })).toEqual({ fenced: [], missing: ['h:leak'], genChanged: false });
      w.stop();
    });

    it('reports a new dataset generation (Redis restarted empty) to renew and to the tail', async (ctx) => {
      const h = await caps();
      if (!h.flush) return ctx.skip();
      const a = await open({ nodeId: 'a' });
      const before = await a.snapshot();
      const { epoch } = await a.register(entry('h:g', 'a'), {});
      const w = watch(a, (await a.snapshot()).cursor);
      await h.flush();
      const r = await a.renew([{ key: 'h:g', epoch }], { cv: 0, peers: 1 });
      expect(r).toEqual({ fenced: [], missing: [], genChanged: true });
      await w.reset();
      const again = await a.reclaim(entry('h:g', 'a'));
      // Epochs keep growing across the flush, so an epoch held from before never names the new entry.
      expect(again!.epoch).toBeGreaterThan(epoch);
      const after = await a.snapshot();
      expect(after.gen).not.toBe(before.gen);
      expect(after.entries.map((x) => x.epoch)).toEqual([again!.epoch]);
      expect((await a.renew([{ key: 'h:g', epoch: again!.epoch }], { cv: 0, peers: 1 })).genChanged).toBe(false);
      expect(await a.unregister('h:g', epoch, 'closed')).toBe(false);
      w.stop();
    });
  });
}
