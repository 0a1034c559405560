import { describe, expect, it } from 'vitest';
import { Directory, PENDING_EPOCH, type DirectoryChange } from './directory.ts';
import { MemoryPresence } from './memory.ts';
import type { ClusterEvent, NodeRecord, PresenceEntry, PresenceStore } from './types.ts';

const ME = 'node-a';

function entry(key: string, peer: string, epoch: number, node = 'node-b', role: 'host' | 'ingress' = 'host'): PresenceEntry {
  return { key, epoch, node, region: 'default', peer: { id: peer, role, info: {}, since: epoch }, address: '10.0.0.1' };
}

/**
 * A memory store whose node list and feed the test controls: the faults a Directory must
 * survive (a node's lease running out, a lost feed) cannot happen to a one-node memory store.
 */
function controlledStore() {
  const memory = new MemoryPresence({ nodeId: ME, region: 'default' });
  let nodes: NodeRecord[] = [node(ME), node('node-b')];
  let resets: Array<() => void> = [];
  const store: PresenceStore = {
    register: (e, o) => memory.register(e, o),
    reclaim: (e) => memory.reclaim(e),
    unregister: (k, ep, r) => memory.unregister(k, ep, r),
    update: (k, ep, patch) => memory.update(k, ep, patch),
    renew: (own, n) => memory.renew(own, n),
    snapshot: () => memory.snapshot(),
    countVolunteers: (a) => memory.countVolunteers(a),
    close: () => memory.close(),
    nodes: async () => nodes,
    tail: (cursor: string, onEvent: (e: ClusterEvent, c: string) => void, onReset: () => void) => {
      resets.push(onReset);
      return memory.tail(cursor, onEvent, onReset);
    },
  };
  return {
    memory,
    store,
    setNodes: (ids: string[]) => (nodes = ids.map(node)),
    loseFeed: () => {
      const r = resets;
      resets = [];
      r.forEach((f) => f());
    },
  };
}

function node(id: string): NodeRecord {
  return { id, region: 'default', cv: 0, startedAt: 0, peers: 0 };
}

async function started(store: PresenceStore): Promise<{ dir: Directory; changes: DirectoryChange[] }> {
  const dir = new Directory(store, { nodeId: ME, nodeRefreshMs: 3_600_000 });
  const changes: DirectoryChange[] = [];
  dir.onChange((c) => changes.push(c));
  await dir.start();
  return { dir, changes };
}

const summary = (c: DirectoryChange) => (c.t === 'reset' ? 'reset' : c.t === 'leave' ? `leave ${c.entry.peer.id} ${c.reason}` : `${c.t} ${c.entry.peer.id}`);

describe('the Directory', () => {
  it('applies a join or update only past the entry’s epoch, and a leave only at it', async () => {
    const { dir, changes } = await started(controlledStore().store);
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'p1', 5) });
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'p0', 3) }); // a replay of an older registration
    dir.apply({ v: 1, t: 'update', entry: { ...entry('h:x', 'p1', 5), status: [{ name: 'a', version: 1, state: 'serving' }] } });
    dir.apply({ v: 1, t: 'update', entry: entry('h:x', 'p0', 4) });
    dir.apply({ v: 1, t: 'leave', key: 'h:x', peer: 'p1', epoch: 4, node: 'node-b', reason: 'closed' });
    expect(dir.get('h:x')).toMatchObject({ epoch: 5, peer: { id: 'p1' }, status: [{ name: 'a' }] });
    dir.apply({ v: 1, t: 'leave', key: 'h:x', peer: 'p1', epoch: 5, node: 'node-b', reason: 'closed' });
    expect(dir.get('h:x')).toBeUndefined();
    expect(changes.map(summary)).toEqual(['join p1', 'update p1', 'leave p1 closed']);
  });

  it('lets the newest registration of a key win: its join, then the old peer’s leave as replaced', async () => {
    const { dir, changes } = await started(controlledStore().store);
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'p1', 5) });
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'p2', 7, 'node-c') });
    expect(changes.map(summary)).toEqual(['join p1', 'join p2', 'leave p1 replaced']);
    expect(dir.lookup('p1')).toBeUndefined();
    expect(dir.lookup('p2')).toMatchObject({ live: true, entry: { node: 'node-c' } });
  });

  it('tells the hub to close its own peer when another node registered the key later', async () => {
    const { dir, changes } = await started(controlledStore().store);
    dir.localJoin(entry('h:x', 'mine', 4, ME));
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'theirs', 9) });
    expect(changes.map(summary)).toEqual(['join mine', 'join theirs', 'leave mine replaced', 'fenced mine']);
  });

  it('keeps an unconfirmed local registration against late events of an older one', async () => {
    const { dir, changes } = await started(controlledStore().store);
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'old', 5) });
    dir.localJoin(entry('h:x', 'new', PENDING_EPOCH, ME));
    dir.apply({ v: 1, t: 'update', entry: entry('h:x', 'old', 5) });
    expect(dir.get('h:x')!.peer.id).toBe('new');
    expect(dir.localJoin(entry('h:x', 'new', 6, ME))).toBe(true);
    expect(changes.map(summary)).toEqual(['join old', 'join new', 'leave old replaced', 'update new']);
  });

  it('skips the feed’s events of its own node (the hub applied them already)', async () => {
    const { dir, changes } = await started(controlledStore().store);
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'p1', 5, ME) });
    expect(dir.get('h:x')).toBeUndefined();
    expect(changes).toEqual([]);
  });

  it('hides the peers of a node whose lease ran out, and shows them again if it comes back', async () => {
    const c = controlledStore();
    const { dir, changes } = await started(c.store);
    dir.apply({ v: 1, t: 'join', entry: entry('h:x', 'p1', 5) });
    dir.localJoin(entry('i:in', 'ingress', 6, ME, 'ingress'));
    c.setNodes([ME]);
    await dir.refreshNodes();
    expect(dir.entries().map((e) => e.peer.id)).toEqual(['ingress']);
    expect(dir.lookup('p1')).toMatchObject({ live: false });
    expect(dir.nodes().map((n) => n.id)).toEqual([ME]);
    c.setNodes([ME, 'node-b']);
    await dir.refreshNodes();
    expect(changes.map(summary)).toEqual(['join p1', 'join ingress', 'leave p1 node-lost', 'join p1']);
  });

  it('shows a node that just started as soon as it registers a peer, before the node list is read again', async () => {
    const { dir } = await started(controlledStore().store);
    dir.apply({ v: 1, t: 'join', entry: entry('h:y', 'p9', 8, 'node-new') });
    expect(dir.lookup('p9')).toMatchObject({ live: true });
  });

  it('rebuilds from a snapshot when the feed is lost, keeping its own peers, and says reset', async () => {
    const c = controlledStore();
    const { dir, changes } = await started(c.store);
    dir.localJoin(entry('i:in', 'ingress', 3, ME, 'ingress'));
    dir.apply({ v: 1, t: 'join', entry: entry('h:gone', 'p1', 4) });
    // Meanwhile in the store: p1 left and p2 joined, and this node missed both events.
    await c.memory.register({ key: 'h:new', node: 'node-b', region: 'default', peer: { id: 'p2', role: 'host', info: {}, since: 1 }, address: '' }, {});
    c.loseFeed();
    await dir.resync();
    expect(dir.entries().map((e) => e.peer.id).sort()).toEqual(['ingress', 'p2']);
    expect(changes.at(-1)).toEqual({ t: 'reset' });
  });

  it('answers nothing before its first snapshot, then is ready', async () => {
    const dir = new Directory(controlledStore().store, { nodeId: ME, nodeRefreshMs: 3_600_000 });
    expect(dir.ready).toBe(false);
    await dir.start();
    expect(dir.ready).toBe(true);
    dir.close();
  });
});
