/**
 * What the hub checks of every message a peer sends before acting on it: the connection's rate
 * budget, text frames only, a message that parses, hello first and once, and, for a host's
 * signals, a budget per kind of signal. Each check answers with the error code the connection is
 * closed with (signaling-hub.ts `#fail`), or lets the message through.
 */
import type { RawData } from 'ws';
import { parseClientMessage, type ClientMessage, type SignalingErrorCode, type SignalRequest } from '../protocol/index.ts';
import type { Budget } from '../protocol/index.ts';
import type { Connection } from './hub-peer.ts';

/** The kinds of signal budgeted separately (the link signals of protocol/link.ts, and the rest). */
export type SignalKind = 'offer' | 'answer' | 'candidate' | 'websocket' | 'close' | 'other';

/** One offer/answer exchange per connection attempt needs a handful of each link signal. */
const LINK_SIGNAL: Budget = { perSecond: 2, burst: 10 };

/** Per connection: a handful of each link signal, a few dozen ICE candidates, and little else. */
export const SIGNAL_RATE_DEFAULTS: Readonly<Record<SignalKind, Budget>> = Object.freeze({
  offer: LINK_SIGNAL,
  answer: LINK_SIGNAL,
  websocket: LINK_SIGNAL,
  close: LINK_SIGNAL,
  candidate: { perSecond: 20, burst: 100 },
  other: { perSecond: 1, burst: 5 },
});

const SIGNAL_KINDS = new Set<string>(['offer', 'answer', 'candidate', 'websocket', 'close']);

/** A check's verdict: the message to act on, or why the connection is closed. */
export type Checked = { ok: true; message: ClientMessage } | { ok: false; code: SignalingErrorCode; reason: string };

/**
 * Spends the connection's budget for one frame and parses it. Hello must come first and only
 * once; a frame after the peer's first is anything but hello.
 */
export function checkMessage(conn: Pick<Connection, 'bucket' | 'info'>, data: RawData, isBinary: boolean): Checked {
  if (!conn.bucket.take()) return { ok: false, code: 'SIG_RATE_LIMITED', reason: 'too many messages' };
  if (isBinary) return { ok: false, code: 'SIG_BAD_MESSAGE', reason: 'binary frames are not accepted' };
  const result = parseClientMessage(rawToText(data));
  if (!result.ok) return { ok: false, code: 'SIG_BAD_MESSAGE', reason: result.reason };
  const message = result.message;
  if (conn.info === null && message.type !== 'hello') return { ok: false, code: 'SIG_BAD_MESSAGE', reason: 'the first message must be hello' };
  if (conn.info !== null && message.type === 'hello') return { ok: false, code: 'SIG_BAD_MESSAGE', reason: 'hello was already sent' };
  return { ok: true, message };
}

/**
 * Spends a host's budget for one signal of its kind (protocol/budget-table.ts, made per host
 * with {@link SIGNAL_RATE_DEFAULTS} and the hub's `signalRateLimits`); the reason to close it
 * when that budget is spent, else null. Ingresses have no table: they are the operator's.
 */
export function spendSignal(conn: Pick<Connection, 'signalBudgets'>, message: SignalRequest): string | null {
  if (conn.signalBudgets === null) return null;
  const kind = signalKind(message.data);
  return conn.signalBudgets.take(kind) ? null : `too many ${kind} signals`;
}

function signalKind(data: unknown): SignalKind {
  const kind = typeof data === 'object' && data !== null ? (data as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' && SIGNAL_KINDS.has(kind) ? (kind as SignalKind) : 'other';
}

function rawToText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
