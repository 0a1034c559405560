import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryCluster, MemoryEphemeral, MemoryPresence, LoopbackBus } from './memory.ts';
import { PresenceLimitError, PresenceUnavailableError, type ClusterEvent, type PresenceEntry } from './types.ts';

const entry = (key: string, peer: string, extra: Partial<Omit<PresenceEntry, 'epoch'>> = {}): Omit<PresenceEntry, 'epoch'> => ({
  key,
  node: 'n1',
  region: 'default',
  peer: { id: peer, role: 'host', info: {}, since: 1 },
  address: '10.0.0.1',
  ...extra,
});

const volunteer = (key: string, peer: string, address = '10.0.0.9') => entry(key, peer, { address, peer: { id: peer, role: 'host', info: {}, since: 1, volunteer: true } });

describe('MemoryPresence', () => {
  it('gives every registration a larger epoch, and the newest registration of a key wins and names the one it replaced', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    const events: ClusterEvent[] = [];
    p.tail((await p.snapshot()).cursor, (e) => events.push(e), () => {});
    const a = await p.register(entry('h:tab', 'p1'), {});
    const b = await p.register(entry('h:other', 'p2'), {});
    const c = await p.register(entry('h:tab', 'p3', { node: 'n2' }), {});
    expect(b.epoch).toBeGreaterThan(a.epoch);
    expect(c).toEqual({ epoch: c.epoch, replaced: { peer: 'p1', node: 'n1' } });
    expect(c.epoch).toBeGreaterThan(b.epoch);
    expect(events.map((e) => e.t)).toEqual(['join', 'join', 'join']);
    expect(events[2]).toMatchObject({ t: 'join', entry: { key: 'h:tab', epoch: c.epoch }, replaced: { peer: 'p1', node: 'n1' } });
    expect((await p.snapshot()).entries.map((e) => e.peer.id).sort()).toEqual(['p2', 'p3']);
  });

  it('delivers events synchronously, inside the call that caused them', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    const events: string[] = [];
    p.tail((await p.snapshot()).cursor, (e) => events.push(e.t), () => {});
    const pending = p.register(entry('h:a', 'p1'), {});
    expect(events).toEqual(['join']);
    await pending;
  });

  it('unregisters and updates only at the current epoch', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    const old = await p.register(entry('h:a', 'p1'), {});
    const now = await p.register(entry('h:a', 'p2'), {});
    expect(await p.unregister('h:a', old.epoch, 'closed')).toBe(false);
    expect(await p.update('h:a', old.epoch, { status: [] })).toBe(false);
    expect(await p.update('h:a', now.epoch, { status: [{ name: 'x', version: 1, state: 'serving' }] })).toBe(true);
    expect((await p.snapshot()).entries[0]!.status).toEqual([{ name: 'x', version: 1, state: 'serving' }]);
    expect(await p.unregister('h:a', now.epoch, 'closed')).toBe(true);
    expect((await p.snapshot()).entries).toEqual([]);
  });

  it('reports keys fenced by a newer epoch and keys missing on renew, and reclaims only absent keys', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    const a = await p.register(entry('h:a', 'p1'), {});
    const b = await p.register(entry('h:b', 'p2'), {});
    await p.register(entry('h:a', 'p9', { node: 'n2' }), {});
    await p.unregister('h:b', b.epoch, 'closed');
    expect(await p.renew([{ key: 'h:a', epoch: a.epoch }, { key: 'h:b', epoch: b.epoch }], { cv: 0, peers: 2 })).toEqual({ fenced: ['h:a'], missing: ['h:b'], genChanged: false });
    expect(await p.reclaim(entry('h:a', 'p1'))).toBeNull();
    const back = await p.reclaim(entry('h:b', 'p2'));
    expect(back!.epoch).toBeGreaterThan(b.epoch);
    // The same connection again (its earlier call may have run although it timed out): a new epoch.
    expect((await p.reclaim(entry('h:b', 'p2')))!.epoch).toBeGreaterThan(back!.epoch);
  });

  it('caps volunteers per address, not counting a re-registration of the same key nor operators', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    await p.register(volunteer('h:v1', 'p1'), { volunteerCap: 2 });
    await p.register(volunteer('h:v2', 'p2'), { volunteerCap: 2 });
    await p.register(entry('h:op', 'p3', { address: '10.0.0.9' }), { volunteerCap: 2 });
    await expect(p.register(volunteer('h:v3', 'p4'), { volunteerCap: 2 })).rejects.toBeInstanceOf(PresenceLimitError);
    await expect(p.register(volunteer('h:v2', 'p5'), { volunteerCap: 2 })).resolves.toMatchObject({ replaced: { peer: 'p2' } });
    await expect(p.register(volunteer('h:v3', 'p6', '10.0.0.10'), { volunteerCap: 2 })).resolves.toBeTruthy();
    expect(await p.countVolunteers('10.0.0.9')).toBe(2);
  });

  it('replays events after a cursor, and asks for a new snapshot when the cursor is unknown', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    const { cursor } = await p.snapshot();
    await p.register(entry('h:a', 'p1'), {});
    const replayed: string[] = [];
    p.tail(cursor, (e) => replayed.push(e.t), () => replayed.push('reset'));
    expect(replayed).toEqual(['join']);
    const reset = new Promise<void>((resolve) => p.tail('999', () => {}, resolve));
    await reset;
  });

  it('fails every call once closed, as an unreachable store would', async () => {
    const p = new MemoryPresence({ nodeId: 'n1', region: 'default' });
    await p.close();
    await expect(p.register(entry('h:a', 'p1'), {})).rejects.toBeInstanceOf(PresenceUnavailableError);
  });
});

describe('LoopbackBus', () => {
  it('delivers to its own node and refuses any other with PresenceUnavailableError', async () => {
    const bus = new LoopbackBus('n1');
    const got = new Promise((resolve) => bus.onMessage((m, from) => resolve({ m, from })));
    await bus.send('n1', { v: 1, t: 'drain', peer: 'p', draining: true });
    expect(await got).toEqual({ m: { v: 1, t: 'drain', peer: 'p', draining: true }, from: 'n1' });
    await expect(bus.send('n2', { v: 1, t: 'drain', peer: 'p', draining: true })).rejects.toBeInstanceOf(PresenceUnavailableError);
  });
});

describe('MemoryEphemeral', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps a candidate for its TTL only', async () => {
    vi.useFakeTimers();
    const e = new MemoryEphemeral();
    await e.putCandidate('c1', { app: 'x' }, 1000);
    expect(await e.getCandidate('c1')).toEqual({ app: 'x' });
    vi.advanceTimersByTime(1000);
    expect(await e.getCandidate('c1')).toBeNull();
    e.clear();
  });

  it('takes from a token bucket per name: a burst, then the rate', async () => {
    let now = 0;
    const e = new MemoryEphemeral(() => now);
    const rate = { perSecond: 1, burst: 2 };
    expect([await e.take('join:a', rate), await e.take('join:a', rate), await e.take('join:a', rate)]).toEqual([true, true, false]);
    expect(await e.take('join:b', rate)).toBe(true);
    now += 1000;
    expect(await e.take('join:a', rate)).toBe(true);
  });
});

describe('createMemoryCluster', () => {
  it('makes the single-machine parts', async () => {
    const parts = createMemoryCluster({ nodeId: 'n1', region: 'eu' });
    expect(parts).toMatchObject({ nodeId: 'n1', region: 'eu', kind: 'memory' });
    expect(await parts.presence.nodes()).toMatchObject([{ id: 'n1', region: 'eu' }]);
    await parts.close();
  });
});
