import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { peerLog } from './peer-log.ts';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('peerLog', () => {
  it('writes one line per peer and kind per interval, and counts the rest', () => {
    const lines: Array<[string, string, Record<string, unknown> | undefined]> = [];
    const log = peerLog((level, msg, fields) => lines.push([level, msg, fields]), 10_000);
    for (let i = 0; i < 900; i++) log('warn', 'ignored a malformed signal', { from: 'peer-a' });
    for (let i = 0; i < 900; i++) log('warn', 'ignored a malformed signal', { from: 'peer-b' });
    log('info', 'request', { url: '/' }); // names no peer: always written
    log('error', 'boom', { host: 'peer-a' }); // errors always written
    expect(lines).toHaveLength(4);
    // The counts come out at the end of the interval, without another line to carry them.
    vi.advanceTimersByTime(10_000);
    expect(lines.slice(4)).toEqual([
      ['warn', 'ignored a malformed signal (repeated)', { peer: 'peer-a', suppressed: 899, intervalMs: 10_000 }],
      ['warn', 'ignored a malformed signal (repeated)', { peer: 'peer-b', suppressed: 899, intervalMs: 10_000 }],
    ]);
    log('warn', 'ignored a malformed signal', { from: 'peer-a' });
    expect(lines).toHaveLength(7);
    log.stop();
  });

  it('carries the count on the next line of the kind, once the interval is over', () => {
    let now = 0;
    const lines: Array<Record<string, unknown> | undefined> = [];
    const log = peerLog((_l, _m, fields) => lines.push(fields), 1000, () => now);
    log('warn', 'bad signal', { host: 'h' });
    log('warn', 'bad signal', { host: 'h' });
    now = 1000;
    log('warn', 'bad signal', { host: 'h', n: 3 });
    expect(lines).toEqual([{ host: 'h' }, { host: 'h', n: 3, suppressed: 1 }]);
    log.stop();
  });
});
