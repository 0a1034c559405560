import { describe, expect, it } from 'vitest';
import { captureConsole, formatArgs, RequestLogs, type LogLine } from './console-capture.ts';

const describeErr = (e: Error) => `${e.name}: ${e.message}`;

describe('formatArgs', () => {
  it('prints arguments as a browser console does', () => {
    expect(formatArgs(['a', 1, true, null, undefined], describeErr)).toBe('a 1 true null undefined');
    expect(formatArgs(['%s is %d years, %i, %f%%', 'Ann', '41.5', 7.9, 0.5], describeErr)).toBe('Ann is 41.5 years, 7, 0.5%');
    expect(formatArgs(['%cstyled', 'color: red'], describeErr)).toBe('styled');
    expect(formatArgs([{ a: [1, 'x'] }, 'tail'], describeErr)).toBe('{"a":[1,"x"]} tail');
    expect(formatArgs([new Map([['k', 1]])], describeErr)).toBe('Map {"Map(1)":{"k":1}}');
    expect(formatArgs([new TypeError('bad')], describeErr)).toBe('TypeError: bad');
    expect(formatArgs([10n, Symbol('s'), function named() {}], describeErr)).toBe('10n Symbol(s) [Function named]');
  });

  it('names a cycle instead of following it', () => {
    const o: Record<string, unknown> = { n: 1 };
    o.self = o;
    expect(formatArgs([o], describeErr)).toBe('{"n":1,"self":"[Circular]"}');
  });
});

describe('RequestLogs', () => {
  function setup() {
    const active = new Map<number, unknown>();
    const posted: LogLine[] = [];
    const logs = new RequestLogs(active, (l) => posted.push(l));
    return { active, posted, logs };
  }

  it('gives a line to the request running synchronously, else to the only one in flight, else to none', () => {
    const { active, posted, logs } = setup();
    active.set(1, null).set(2, null);
    logs.current = 2;
    logs.write('log', 'sync');
    logs.current = 0;
    logs.write('log', 'ambiguous');
    active.delete(2);
    logs.write('warn', 'only one');
    expect(posted.map((l) => [l.id, l.text])).toEqual([
      [2, 'sync'],
      [1, 'only one'],
    ]);
    expect(logs.unattributed).toBe(1);
  });

  it('posts at most the per-request lines, then what was cut when the request ends', () => {
    const { active, posted, logs } = setup();
    active.set(7, null);
    for (let i = 0; i < 105; i++) logs.write('log', `line ${i}`);
    logs.end(7);
    expect(posted).toHaveLength(101);
    expect(posted.at(-1)).toEqual({ id: 7, level: 'cut', text: '', cutLines: 5, cutBytes: 5 * 'line 10x'.length });
  });

  it('replaces the console methods of the object it is given', () => {
    const { active, posted, logs } = setup();
    active.set(3, null);
    const fake = { log() {}, info() {}, warn() {}, error() {}, debug() {} } as unknown as Console;
    captureConsole(fake, logs, describeErr);
    fake.error('oops', 42);
    expect(posted).toEqual([{ id: 3, level: 'error', text: 'oops 42', cutLines: 0, cutBytes: 0 }]);
  });
});
