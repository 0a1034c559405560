import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KV_LIMITS, type KvEntry, type KvPutOptions, type KvStore } from '../ingress/index.ts';
import { settledLiveBytes } from './live-memory.ts';

/** What a backend's test file hands the suite: a fresh, empty store on an injected clock. */
export interface KvStoreHarness {
  store: KvStore;
  /** The store's clock, in ms since the epoch; tests move it forward to expire entries. */
  clock: { now: number };
  cleanup(): Promise<void>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * The conformance suite: one `describe` checking every guarantee in kv/store.ts. Each test gets
 * a store from `make` (called per test) and calls `cleanup` after.
 *
 * @example
 * ```ts
 * kvStoreSuite('SqliteKvStore', async () => {
 *   const clock = { now: Date.now() };
 *   const store = new SqliteKvStore(':memory:', { now: () => clock.now });
 *   return { store, clock, cleanup: () => store.close() };
 * });
 * ```
 */
export function kvStoreSuite(name: string, make: () => Promise<KvStoreHarness>): void {
  describe(`${name} (KvStore conformance)`, () => {
    let h: KvStoreHarness;
    let store: KvStore;
    beforeEach(async () => {
      h = await make();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    const put = (ns: string, key: string, value: Iterable<string | Uint8Array> | AsyncIterable<Uint8Array>, options: Partial<KvPutOptions> = {}) =>
      store.put(ns, key, Symbol.asyncIterator in value ? value : source(value), { maxValueBytes: KV_LIMITS.valueBytes, ...options });
    const inSeconds = (s: number) => Math.floor(h.clock.now / 1000) + s;

    describe('values', () => {
      it('round-trips a string value', async () => {
        await put('ns', 'greeting', ['hello, ', 'wörld']);
        const entry = await store.get('ns', 'greeting');
        expect(entry?.size).toBe(Buffer.byteLength('hello, wörld'));
        expect(entry?.expiration).toBeUndefined();
        expect(entry?.metadata).toBeUndefined();
        expect((await read(entry!)).toString('utf8')).toBe('hello, wörld');
      });

      it('round-trips every byte value, in chunks of at most 64 KiB', async () => {
        const value = Buffer.alloc(200 * KiB + 3, 0).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
        // Odd chunk sizes, so the backend cannot rely on the caller's chunking.
        await put('ns', 'bin', [value.subarray(0, 1), value.subarray(1, 100_001), value.subarray(100_001)]);
        const entry = await store.get('ns', 'bin');
        const sizes: number[] = [];
        const out: Buffer[] = [];
        for await (const chunk of entry!.chunks()) {
          sizes.push(chunk.byteLength);
          out.push(Buffer.from(chunk));
        }
        expect(Buffer.concat(out).equals(value)).toBe(true);
        expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * KiB);
      });

      it('keeps metadata and expiration with the value, in get and list', async () => {
        const expiration = inSeconds(3600);
        await put('ns', 'k', ['v'], { expiration, metadata: '{"type":"text","n":1}' });
        const entry = await store.get('ns', 'k');
        expect(entry).toMatchObject({ size: 1, expiration, metadata: '{"type":"text","n":1}' });
        expect((await store.list('ns', { prefix: '', limit: 10 })).keys).toEqual([{ name: 'k', expiration, metadata: '{"type":"text","n":1}' }]);
      });

      it('stores an empty value', async () => {
        await put('ns', 'empty', []);
        const entry = await store.get('ns', 'empty');
        expect(entry?.size).toBe(0);
        expect((await read(entry!)).length).toBe(0);
        expect(await store.count('ns')).toBe(1);
      });

      it('replaces value, metadata and expiration on overwrite', async () => {
        await put('ns', 'k', ['first'], { expiration: inSeconds(3600), metadata: '"old"' });
        await put('ns', 'k', ['second']);
        const entry = await store.get('ns', 'k');
        expect((await read(entry!)).toString()).toBe('second');
        expect(entry?.expiration).toBeUndefined();
        expect(entry?.metadata).toBeUndefined();
        expect(await store.count('ns')).toBe(1);
      });

      it('returns null for a missing key', async () => {
        expect(await store.get('ns', 'nothing')).toBeNull();
      });

      it('deletes an entry, and deleting a missing key is no error', async () => {
        await put('ns', 'k', ['v']);
        await store.delete('ns', 'k');
        expect(await store.get('ns', 'k')).toBeNull();
        expect((await store.list('ns', { prefix: '', limit: 10 })).keys).toEqual([]);
        expect(await store.count('ns')).toBe(0);
        await store.delete('ns', 'k');
        await store.delete('other', 'never');
      });
    });

    describe('atomicity', () => {
      const old = Buffer.alloc(300 * KiB, 0xaa);

      it('lets a reader that started on a value read all of it after a put replaces it', async () => {
        await put('ns', 'k', [old]);
        const reader = (await store.get('ns', 'k'))!.chunks()[Symbol.asyncIterator]();
        const first = await reader.next();
        await put('ns', 'k', [Buffer.alloc(500 * KiB, 0xbb)]);
        const rest = await drain(reader);
        expect(Buffer.concat([Buffer.from(first.value as Uint8Array), rest]).equals(old)).toBe(true);
        const now = (await store.get('ns', 'k'))!;
        expect(now.size).toBe(500 * KiB);
        expect((await read(now)).every((b) => b === 0xbb)).toBe(true);
      });

      it('lets a reader that started on a value read all of it after a delete', async () => {
        await put('ns', 'k', [old]);
        const reader = (await store.get('ns', 'k'))!.chunks()[Symbol.asyncIterator]();
        const first = await reader.next();
        await store.delete('ns', 'k');
        expect(Buffer.concat([Buffer.from(first.value as Uint8Array), await drain(reader)]).equals(old)).toBe(true);
      });

      it('leaves the old value in place when the source throws midway', async () => {
        await put('ns', 'k', [old]);
        async function* failing(): AsyncGenerator<Uint8Array> {
          yield Buffer.alloc(100 * KiB, 1);
          yield Buffer.alloc(100 * KiB, 2);
          throw new Error('upload cut off');
        }
        await expect(put('ns', 'k', failing())).rejects.toThrow('upload cut off');
        expect((await read((await store.get('ns', 'k'))!)).equals(old)).toBe(true);
      });

      it('rejects an oversized value with KV_VALUE_TOO_LARGE, stops pulling and keeps the old value', async () => {
        await put('ns', 'k', ['small']);
        const limit = 1 * MiB;
        const chunk = 16 * KiB;
        let pulled = 0;
        let closed = false;
        async function* endless(): AsyncGenerator<Uint8Array> {
          try {
            for (;;) {
              pulled += chunk;
              yield Buffer.alloc(chunk, 7);
            }
          } finally {
            closed = true;
          }
        }
        await expect(put('ns', 'k', endless(), { maxValueBytes: limit })).rejects.toMatchObject({ code: 'KV_VALUE_TOO_LARGE' });
        expect(pulled).toBeGreaterThan(limit);
        expect(pulled).toBeLessThanOrEqual(limit + chunk);
        expect(closed).toBe(true);
        expect((await read((await store.get('ns', 'k'))!)).toString()).toBe('small');
      });

      it('accepts a value of exactly maxValueBytes', async () => {
        await put('ns', 'k', [Buffer.alloc(100), Buffer.alloc(28)], { maxValueBytes: 128 });
        expect((await store.get('ns', 'k'))?.size).toBe(128);
      });
    });

    describe('expiration', () => {
      it('hides an entry from get, list and count once its expiration has passed', async () => {
        const expiration = inSeconds(120);
        await put('ns', 'brief', ['v'], { expiration });
        await put('ns', 'lasting', ['v']);
        h.clock.now = expiration * 1000 - 1;
        expect(await store.get('ns', 'brief')).not.toBeNull();
        expect(await store.count('ns')).toBe(2);
        h.clock.now = expiration * 1000;
        expect(await store.get('ns', 'brief')).toBeNull();
        expect((await store.list('ns', { prefix: '', limit: 10 })).keys.map((k) => k.name)).toEqual(['lasting']);
        expect(await store.count('ns')).toBe(1);
      });

      it('makes an expired key writable again', async () => {
        const expiration = inSeconds(60);
        await put('ns', 'k', ['old'], { expiration });
        h.clock.now = expiration * 1000 + 1;
        await put('ns', 'k', ['new']);
        expect((await read((await store.get('ns', 'k'))!)).toString()).toBe('new');
        expect(await store.count('ns')).toBe(1);
      });
    });

    describe('list', () => {
      // Hand-ordered by UTF-8 bytes. JavaScript's sort (UTF-16 code units) puts '😀' (a surrogate
      // pair, 0xD83D...) before '\uFFFD'; UTF-8 puts it after (F0 9F... > EF BF BD).
      const ordered = ['A', 'Z', 'a', 'a b', 'aa', 'ab', 'abc', 'a\u00e9', 'b', 'z', '\u00e9', '\u00e9t\u00e9', '\u65e5\u672c', '\ufffd', '\u{1F600}'];

      it('returns keys in ascending order of their UTF-8 bytes', async () => {
        for (const key of [...ordered].reverse()) await put('ns', key, ['v']);
        const { keys, listComplete, cursor } = await store.list('ns', { prefix: '', limit: 1000 });
        expect(keys.map((k) => k.name)).toEqual(ordered);
        expect(listComplete).toBe(true);
        expect(cursor).toBeUndefined();
      });

      it('returns only keys with the prefix, including keys that are prefixes of each other', async () => {
        for (const key of ordered) await put('ns', key, ['v']);
        const names = async (prefix: string) => (await store.list('ns', { prefix, limit: 1000 })).keys.map((k) => k.name);
        expect(await names('a')).toEqual(['a', 'a b', 'aa', 'ab', 'abc', 'a\u00e9']);
        expect(await names('ab')).toEqual(['ab', 'abc']);
        expect(await names('abc')).toEqual(['abc']);
        expect(await names('\u00e9')).toEqual(['\u00e9', '\u00e9t\u00e9']);
        expect(await names('A')).toEqual(['A']);
        expect(await names('%')).toEqual([]);
        expect(await names('abcd')).toEqual([]);
      });

      it('pages through 3000 keys with limit and cursor', async () => {
        const all = Array.from({ length: 3000 }, (_, i) => `key/${String(i).padStart(4, '0')}`);
        for (let i = 0; i < all.length; i += 100) await Promise.all(all.slice(i, i + 100).map((key) => put('ns', key, ['v'])));
        expect(await store.count('ns')).toBe(3000);

        const seen: string[] = [];
        const pages: number[] = [];
        let cursor: string | undefined;
        for (;;) {
          const page = await store.list('ns', { prefix: 'key/', limit: 1000, ...(cursor !== undefined && { cursor }) });
          seen.push(...page.keys.map((k) => k.name));
          pages.push(page.keys.length);
          if (page.listComplete) {
            expect(page.cursor).toBeUndefined();
            break;
          }
          cursor = page.cursor;
          expect(typeof cursor).toBe('string');
        }
        expect(pages).toEqual([1000, 1000, 1000]);
        expect(seen).toEqual(all);

        // Small pages within a prefix.
        const small: string[] = [];
        cursor = undefined;
        do {
          const page = await store.list('ns', { prefix: 'key/29', limit: 7, ...(cursor !== undefined && { cursor }) });
          expect(page.keys.length).toBeLessThanOrEqual(7);
          small.push(...page.keys.map((k) => k.name));
          cursor = page.listComplete ? undefined : page.cursor;
        } while (cursor !== undefined);
        expect(small).toEqual(all.slice(2900));
      });

      it('resumes after the cursor even when that key was deleted meanwhile', async () => {
        for (const key of ['a', 'b', 'c', 'd']) await put('ns', key, ['v']);
        const first = await store.list('ns', { prefix: '', limit: 2 });
        expect(first.keys.map((k) => k.name)).toEqual(['a', 'b']);
        await store.delete('ns', 'b');
        const second = await store.list('ns', { prefix: '', limit: 2, cursor: first.cursor! });
        expect(second.keys.map((k) => k.name)).toEqual(['c', 'd']);
        expect(second.listComplete).toBe(true);
      });

      it('rejects a cursor it did not return with KV_BAD_LIST', async () => {
        await put('ns', 'k', ['v']);
        for (const cursor of ['', 'not a cursor!', '_w', 'a=']) {
          await expect(store.list('ns', { prefix: '', limit: 10, cursor })).rejects.toMatchObject({ code: 'KV_BAD_LIST' });
        }
      });
    });

    describe('namespaces', () => {
      it('keeps the same key apart in different namespaces, even when one name prefixes another', async () => {
        // Names and keys built from separators: a layout like `ns + ':' + key` or
        // `ns + ':e:' + key` would make some of these pairs the same entry ('a' + 'b:x' and
        // 'a:b' + 'x', say).
        const namespaces = ['a', 'a:', 'a:b', 'a:e:b', 'a:b:e', 'a:i'];
        const keys = ['x', ':x', 'b:x', 'e:x', 'b:e:x', 'i'];
        for (const ns of namespaces) for (const key of keys) await put(ns, key, [`${ns}|${key}`]);
        for (const ns of namespaces) {
          for (const key of keys) expect((await read((await store.get(ns, key))!)).toString()).toBe(`${ns}|${key}`);
          const listed = (await store.list(ns, { prefix: '', limit: 100 })).keys.map((k) => k.name);
          expect(listed).toEqual([...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))));
          expect(await store.count(ns)).toBe(keys.length);
        }
        await store.dropNamespace('a');
        expect(await store.count('a')).toBe(0);
        expect(await store.count('a:b')).toBe(keys.length);
      });

      it('drops every entry of a namespace and nothing else', async () => {
        const keys = Array.from({ length: 1500 }, (_, i) => `k${i}`);
        for (let i = 0; i < keys.length; i += 100) await Promise.all(keys.slice(i, i + 100).map((key) => put('app:KV', key, ['v'])));
        await put('app:KV', 'expiring', ['v'], { expiration: inSeconds(3600) });
        await put('app:KV2', 'k1', ['kept']);
        await store.dropNamespace('app:KV');
        expect(await store.count('app:KV')).toBe(0);
        expect(await store.get('app:KV', 'k1')).toBeNull();
        expect((await store.list('app:KV', { prefix: '', limit: 1000 })).keys).toEqual([]);
        expect((await read((await store.get('app:KV2', 'k1'))!)).toString()).toBe('kept');
        await put('app:KV', 'k1', ['again']);
        expect(await store.count('app:KV')).toBe(1);
      });
    });

    it('streams a 20 MiB value in and out byte-identical, holding only chunks in memory', async () => {
      const total = 20 * MiB;
      const chunk = 64 * KiB;
      const sample = 4 * MiB;
      const inHash = createHash('sha256');
      const memory: number[] = [];
      const base = await settledLiveBytes();
      async function* generate(): AsyncGenerator<Uint8Array> {
        for (let at = 0; at < total; at += chunk) {
          const bytes = Buffer.alloc(chunk, at / chunk);
          bytes.writeUInt32BE(at, 0);
          inHash.update(bytes);
          if (at % sample === 0) memory.push((await settledLiveBytes()) - base);
          yield bytes;
        }
      }
      let started = performance.now();
      await put('ns', 'big', generate());
      const putMs = performance.now() - started;

      started = performance.now();
      const entry = (await store.get('ns', 'big'))!;
      expect(entry.size).toBe(total);
      const outHash = createHash('sha256');
      let received = 0;
      for await (const piece of entry.chunks()) {
        expect(piece.byteLength).toBeLessThanOrEqual(chunk);
        outHash.update(piece);
        if (received % sample === 0) memory.push((await settledLiveBytes()) - base);
        received += piece.byteLength;
      }
      const getMs = performance.now() - started;
      console.info(`[kv ${name}] 20 MiB put ${putMs.toFixed(0)} ms, get ${getMs.toFixed(0)} ms, live memory +${(Math.max(...memory) / MiB).toFixed(1)} MiB at most`);
      expect(received).toBe(total);
      expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
      // Holding the value whole would add 20 MiB. What is live while streaming (a chunk, client
      // buffers, the test's own bookkeeping: 4 to 8 MiB when measured) stays flat with the value.
      expect(Math.max(...memory)).toBeLessThan(12 * MiB);
    }, 60_000);
  });
}

/** An async iterable of the given parts (strings as UTF-8). */
/**
 * A store two nodes share (the same database or Redis, two connections): each sees the other's
 * writes as soon as they resolve. `pair` opens both on a namespace of their own.
 */
export function sharedStoreSuite(name: string, pair: () => Promise<[KvStore, KvStore]>): void {
  describe(`${name} shared by two nodes`, () => {
    it('shows each node the writes of another as soon as they resolve', async () => {
      const [a, b] = await pair();
      const put = { maxValueBytes: KV_LIMITS.valueBytes };
      try {
        for (let i = 0; i < 20; i++) {
          await a.put('ns', 'k', source([`v${i}`]), put);
          expect((await read((await b.get('ns', 'k'))!)).toString()).toBe(`v${i}`);
        }
        expect((await b.list('ns', { prefix: '', limit: 10 })).keys.map((k) => k.name)).toEqual(['k']);
        await b.delete('ns', 'k');
        expect(await a.get('ns', 'k')).toBeNull();
        expect(await a.count('ns')).toBe(0);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  });
}

export async function* source(parts: Iterable<string | Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
}

/** Reads an entry's value whole (tests only: values here are small). */
export async function read(entry: KvEntry): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of entry.chunks()) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

async function drain(reader: AsyncIterator<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let r = await reader.next(); !r.done; r = await reader.next()) parts.push(Buffer.from(r.value));
  return Buffer.concat(parts);
}
