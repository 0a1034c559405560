import { describe, expect, it } from 'vitest';
import { KvReadCache, READ_CACHE_LIMITS } from './read-cache.ts';

describe('KvReadCache (cacheTtl)', () => {
  it('keeps a read for its cacheTtl and forgets it after', () => {
    let now = 0;
    const cache = new KvReadCache(() => now);
    cache.set('B', 'k', new Uint8Array([1]), undefined, 60);
    now = 59_999;
    expect(cache.get('B', 'k')?.value).toEqual(new Uint8Array([1]));
    now = 60_000;
    expect(cache.get('B', 'k')).toBeUndefined();
  });

  it('keeps at most its number of entries, dropping the least recently used', () => {
    const cache = new KvReadCache(() => 0);
    for (let i = 0; i <= READ_CACHE_LIMITS.entries; i++) cache.set('B', `k${i}`, new Uint8Array(1), undefined, 60);
    expect(cache.size).toBe(READ_CACHE_LIMITS.entries);
    expect(cache.get('B', 'k0')).toBeUndefined();
  });

  it('never keeps a large value, and forgets a key that is written', () => {
    const cache = new KvReadCache(() => 0);
    cache.set('B', 'big', new Uint8Array(READ_CACHE_LIMITS.valueBytes + 1), undefined, 60);
    expect(cache.get('B', 'big')).toBeUndefined();
    cache.set('B', 'k', null, undefined, 60);
    expect(cache.get('B', 'k')).toEqual(expect.objectContaining({ value: null }));
    cache.delete('B', 'k');
    expect(cache.get('B', 'k')).toBeUndefined();
  });
});
