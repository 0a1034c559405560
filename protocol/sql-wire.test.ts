import { describe, expect, it } from 'vitest';
import { fromWire, numberPlaceholders, toWire } from './sql-wire.ts';

describe('numberPlaceholders', () => {
  it('numbers ? placeholders in order', () => {
    expect(numberPlaceholders('SELECT * FROM t WHERE a = ? AND b > ?')).toBe('SELECT * FROM t WHERE a = $1 AND b > $2');
  });
  it("turns D1's ?NNN into $NNN", () => {
    expect(numberPlaceholders('SELECT ?2, ?1, ?')).toBe('SELECT $2, $1, $1');
  });
  it('leaves question marks in literals, identifiers, comments and dollar quotes alone', () => {
    const sql = `SELECT '?', E'\\'?', "a?b", $$ ? $$, $tag$ ? $tag$ -- ?\n/* ? /* ? */ ? */, ?`;
    expect(numberPlaceholders(sql)).toBe(`SELECT '?', E'\\'?', "a?b", $$ ? $$, $tag$ ? $tag$ -- ?\n/* ? /* ? */ ? */, $1`);
  });
  it("handles doubled quotes inside literals", () => {
    expect(numberPlaceholders("SELECT 'it''s ?', ?")).toBe("SELECT 'it''s ?', $1");
  });
  it('leaves a statement with $n placeholders unchanged, so jsonb ? works there', () => {
    expect(numberPlaceholders("SELECT data ? 'k' FROM t WHERE id = $1")).toBe("SELECT data ? 'k' FROM t WHERE id = $1");
  });
  it('does not take $1 inside a literal for a placeholder', () => {
    expect(numberPlaceholders("SELECT '$1', ?")).toBe("SELECT '$1', $1");
  });
});

describe('wire values', () => {
  it('round-trips numbers, strings, null, booleans, bigint, blobs and JSON', () => {
    const json = JSON.parse(JSON.stringify([1.5, 'x', null, true, 2n ** 70n, new Uint8Array([0, 255, 7]), { a: [1] }, NaN].map(toWire))) as unknown[];
    const back = json.map(fromWire);
    expect(back.slice(0, 5)).toEqual([1.5, 'x', null, true, 2n ** 70n]);
    expect([...new Uint8Array(back[5] as ArrayBuffer)]).toEqual([0, 255, 7]);
    expect(back[6]).toEqual({ a: [1] });
    expect(back[7]).toBeNaN();
  });
  it('refuses shapes it does not know', () => {
    expect(() => fromWire({ $: 'n', v: '1e5' })).toThrow(TypeError);
    expect(() => fromWire({ $: 'x', v: '' })).toThrow(TypeError);
    expect(() => fromWire([1])).toThrow(TypeError);
    expect(() => toWire(() => 1)).toThrow(TypeError);
  });
});
