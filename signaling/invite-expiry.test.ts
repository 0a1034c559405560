/**
 * Issue 15.7, the time logic, with fake timers: a volunteer's connection ends when its invite
 * expires plus the operator's grace, even for a 30-day invite (past setTimeout's 24.8-day
 * limit), with SIG_TOKEN_EXPIRED and leave reason `expired`; operators' hosts are not cut.
 * Before, nothing ended a connection whose token expired.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { FastifyBaseLogger } from 'fastify';
import { SignalingHub } from './signaling-hub.ts';
import { volunteerScope } from '../protocol/index.ts';

/** Enough of a `ws` socket for the hub: records what it sends and how it was closed. */
class FakeSocket extends EventEmitter {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  readonly sent: Array<Record<string, unknown>> = [];
  closedWith: { code: number; reason: string } | null = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
    this.readyState = WebSocket.CLOSED;
    this.emit('close', code);
  }
  terminate(): void {
    if (this.readyState !== WebSocket.CLOSED) this.close(1006, '');
  }
  ping(): void {}
  hello(info: Record<string, unknown>): void {
    this.emit('message', Buffer.from(JSON.stringify({ type: 'hello', info })), false);
  }
}

const silent = { info() {}, debug() {}, warn() {}, error() {} } as unknown as FastifyBaseLogger;
const DAY = 24 * 3600 * 1000;
const GRACE = 5000;

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
});
afterEach(() => vi.useRealTimers());

function hub(): SignalingHub {
  return new SignalingHub({ helloTimeoutMs: 10_000, heartbeatIntervalMs: 5000, rateLimit: { perSecond: 50, burst: 200 }, maxBufferedBytes: 1 << 20, log: silent, inviteGraceMs: GRACE });
}

describe('an invite that expires', () => {
  it('ends its volunteer connection at expiry plus grace, even 30 days on', () => {
    const h = hub();
    const ingress = new FakeSocket();
    h.accept(ingress as unknown as WebSocket, { role: 'ingress' });
    ingress.hello({ name: 'ingress' });
    const exp = Date.now() / 1000 + 30 * 24 * 3600;
    const volunteer = new FakeSocket();
    h.accept(volunteer as unknown as WebSocket, { role: 'host', sub: 'invite-x', scope: volunteerScope(), exp });
    volunteer.hello({ hostId: 'tab', name: 'ada' });
    // The ingress hears when the volunteer's sessions end.
    expect(ingress.sent.find((m) => m['type'] === 'join')).toMatchObject({ peer: { expiresAt: exp * 1000 + GRACE } });

    vi.advanceTimersByTime(30 * DAY + GRACE - 1);
    expect(volunteer.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect(volunteer.sent.at(-1)).toMatchObject({ type: 'error', code: 'SIG_TOKEN_EXPIRED' });
    expect(volunteer.closedWith).toEqual({ code: 1008, reason: 'SIG_TOKEN_EXPIRED' });
    expect(ingress.sent.at(-1)).toMatchObject({ type: 'leave', reason: 'expired' });
  });

  it("does not cut an operator's host or an ingress (their expiry is checked when they connect)", () => {
    const h = hub();
    const host = new FakeSocket();
    h.accept(host as unknown as WebSocket, { role: 'host', sub: 'launcher', exp: Date.now() / 1000 + 60 });
    host.hello({ hostId: 'tab-1', name: 'tab-1' });
    vi.advanceTimersByTime(3600_000);
    expect(host.closedWith).toBeNull();
  });
});
