import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { randomId } from './random-id.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('randomId', () => {
  it('uses crypto.randomUUID where the page is a secure context', () => {
    expect(randomId({ getRandomValues: () => { throw new Error('not used'); }, randomUUID: () => 'from-randomUUID' })).toBe('from-randomUUID');
  });

  it('builds a v4 UUID from getRandomValues where randomUUID is missing (plain-http pages)', () => {
    const insecure = { getRandomValues: <T extends ArrayBufferView | null>(a: T) => webcrypto.getRandomValues(a as never) as T };
    const ids = new Set(Array.from({ length: 200 }, () => randomId(insecure)));
    expect(ids.size).toBe(200);
    for (const id of ids) expect(id).toMatch(UUID_V4);
  });
});
