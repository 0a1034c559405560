import { describe, expect, it } from 'vitest';
import { EarlyMessages } from './early-messages.ts';

describe('EarlyMessages', () => {
  it('keeps what arrives before the listener and hands it over in order, then delivers directly', () => {
    const early = new EarlyMessages();
    expect(early.deliver(Uint8Array.of(1))).toBe(true);
    expect(early.deliver(Uint8Array.of(2))).toBe(true);
    const seen: number[] = [];
    early.listener = (d) => seen.push(d[0]!);
    expect(seen).toEqual([1, 2]);
    early.deliver(Uint8Array.of(3));
    expect(seen).toEqual([1, 2, 3]);
  });

  it('refuses to hold more than its bound', () => {
    const reasons: string[] = [];
    const early = new EarlyMessages((r) => reasons.push(r), 4);
    expect(early.deliver(new Uint8Array(3))).toBe(true);
    expect(early.deliver(new Uint8Array(2))).toBe(false);
    expect(reasons).toEqual(['the peer sent over 4 bytes before the session started']);
  });
});
