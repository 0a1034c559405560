import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { parseTailQuery, TailHub } from './tail.ts';

/** Enough of a ws socket for the hub: events, readyState, send. */
function fakeSocket(): WebSocket & EventEmitter {
  const s = new EventEmitter() as WebSocket & EventEmitter;
  Object.assign(s, { OPEN: 1, readyState: 1, bufferedAmount: 0, send() {}, close() {}, terminate() {} });
  return s;
}

describe('tail timing (?timing=1)', () => {
  it('reads timing=1 and 0, and refuses anything else', () => {
    expect(parseTailQuery({ timing: '1' })).toMatchObject({ timing: true });
    expect(parseTailQuery({ timing: '0' })).not.toHaveProperty('timing');
    expect(parseTailQuery({})).not.toHaveProperty('timing');
    expect(parseTailQuery({ timing: 'yes' })).toMatch(/timing must be 1 or 0/);
  });

  it('wants timing exactly while a subscriber that asked for it is attached', () => {
    const hub = new TailHub();
    const plain = fakeSocket();
    const timed = fakeSocket();
    hub.subscribe(plain, { samplingRate: 1 });
    expect(hub.wantsTiming).toBe(false);
    hub.subscribe(timed, { samplingRate: 1, timing: true });
    expect(hub.wantsTiming).toBe(true);
    timed.emit('close');
    expect(hub.wantsTiming).toBe(false);
    timed.emit('close'); // a second close event does not count twice
    expect(hub.wantsTiming).toBe(false);
    expect(hub.active).toBe(true);
  });
});
