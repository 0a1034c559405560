import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openKvStore } from './index.ts';
import { KV_LIMITS } from './limits.ts';
import { SqliteKvStore } from './sqlite-store.ts';
import { kvStoreSuite, read, source } from '../../test/kv-store-suite.ts';

const put = { maxValueBytes: KV_LIMITS.valueBytes };

kvStoreSuite('SqliteKvStore', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-kv-'));
  const clock = { now: Date.now() };
  const store = new SqliteKvStore(join(dir, 'kv.db'), { now: () => clock.now });
  return {
    store,
    clock,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteKvStore on disk', () => {
  let dir: string;
  let path: string;
  const clock = { now: 0 };
  const open = (options = {}) => new SqliteKvStore(path, { now: () => clock.now, ...options });
  /** Rows in a table, through a second connection to the same file. */
  const rows = (table: 'kv_chunks' | 'kv_values' | 'kv_entries') => {
    const db = new Database(path, { readonly: true });
    try {
      return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dcdn-kv-'));
    path = join(dir, 'nested', 'dir', 'kv.db');
    clock.now = Date.now();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the parent directory and keeps entries across close and reopen', async () => {
    const expiration = Math.floor(clock.now / 1000) + 3600;
    let store = open();
    await store.put('ns', 'k', source([Buffer.alloc(150 * 1024, 3)]), { ...put, expiration, metadata: '{"a":1}' });
    await store.put('ns', 'gone', source(['x']), put);
    await store.delete('ns', 'gone');
    await store.close();

    store = open();
    const entry = await store.get('ns', 'k');
    expect(entry).toMatchObject({ size: 150 * 1024, expiration, metadata: '{"a":1}' });
    expect((await read(entry!)).equals(Buffer.alloc(150 * 1024, 3))).toBe(true);
    expect(await store.get('ns', 'gone')).toBeNull();
    expect(await store.count('ns')).toBe(1);
    await store.close();
  });

  it('reclaims replaced values and expired entries in the sweep, only after readGraceMs', async () => {
    const store = open({ readGraceMs: 10_000 });
    await store.put('ns', 'k', source([Buffer.alloc(200 * 1024)]), put); // 4 chunks, then replaced
    await store.put('ns', 'k', source([Buffer.alloc(70 * 1024)]), put); // 2 chunks, kept
    await store.put('ns', 'brief', source([Buffer.alloc(10)]), { ...put, expiration: Math.floor(clock.now / 1000) + 60 }); // 1 chunk
    store.sweep();
    expect(rows('kv_chunks')).toBe(7);

    clock.now += 61_000;
    store.sweep(); // the expired entry goes; its value waits out the grace period
    expect(rows('kv_entries')).toBe(1);
    expect(rows('kv_chunks')).toBe(3);

    clock.now += 10_000;
    store.sweep();
    expect(rows('kv_chunks')).toBe(2);
    expect(rows('kv_values')).toBe(1);
    await store.close();
  });

  it('leaves no chunks behind from a put that failed', async () => {
    const store = open();
    await expect(store.put('ns', 'k', source([Buffer.alloc(200 * 1024)]), { maxValueBytes: 100 * 1024 })).rejects.toMatchObject({
      code: 'KV_VALUE_TOO_LARGE',
    });
    expect(rows('kv_chunks')).toBe(0);
    expect(rows('kv_values')).toBe(0);
    await store.close();
  });

  it('reclaims the chunks of a put cut off by a crash an hour later', async () => {
    await open().close();
    const db = new Database(path);
    const id = db.prepare('INSERT INTO kv_values (writing_since) VALUES (?)').run(clock.now).lastInsertRowid;
    db.prepare('INSERT INTO kv_chunks (value_id, seq, data) VALUES (?, 0, ?)').run(id, Buffer.alloc(100));
    db.close();

    const store = open({ readGraceMs: 1000 });
    clock.now += 59 * 60_000;
    store.sweep();
    expect(rows('kv_chunks')).toBe(1);
    clock.now += 60_000;
    store.sweep();
    clock.now += 1000;
    store.sweep();
    expect(rows('kv_chunks')).toBe(0);
    await store.close();
  });

  it('fails a put that streamed past the hour its unfinished value is kept', async () => {
    const store = open();
    await store.put('ns', 'k', source(['old']), put);
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('new, ');
      clock.now += 61 * 60_000;
      store.sweep();
      yield Buffer.from('too late');
    }
    await expect(store.put('ns', 'k', slow(), put)).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    expect((await read((await store.get('ns', 'k'))!)).toString()).toBe('old');
    expect(rows('kv_chunks')).toBe(1);
    await store.close();
  });

  it('fails a reader slower than readGraceMs with KV_STORE_UNAVAILABLE instead of short bytes', async () => {
    const store = open({ readGraceMs: 1000 });
    await store.put('ns', 'k', source([Buffer.alloc(300 * 1024)]), put);
    const reader = (await store.get('ns', 'k'))!.chunks()[Symbol.asyncIterator]();
    await reader.next();
    await store.put('ns', 'k', source(['new']), put);
    clock.now += 1000;
    store.sweep();
    await expect(reader.next()).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    await store.close();
  });

  it('is what openKvStore opens for sqlite:PATH and bare paths, and other schemes are refused', async () => {
    const a = await openKvStore(`sqlite:${path}`);
    await a.put('ns', 'k', source(['v']), put);
    await a.close();
    const b = await openKvStore(path);
    expect(b.kind).toBe('sqlite');
    expect(await b.count('ns')).toBe(1);
    await b.close();
    await expect(openKvStore('postgres://db/kv')).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
  });

  it('fails operations on a closed store with KV_STORE_UNAVAILABLE', async () => {
    const store = open();
    await store.close();
    await expect(store.get('ns', 'k')).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
    await expect(store.put('ns', 'k', source(['v']), put)).rejects.toMatchObject({ code: 'KV_STORE_UNAVAILABLE' });
  });
});
