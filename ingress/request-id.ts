/**
 * Request ids and W3C Trace Context for the ingress.
 *
 * Every request the ingress answers gets an id (`dcdn-request-id` on the answer, in the error
 * body, in the access log and on the handler's `Request`). The forwarded request carries a
 * `traceparent` (https://www.w3.org/TR/trace-context/) whose parent is the ingress's own span:
 * the client's trace id when it sent a valid `traceparent`, else a fresh trace whose id is the
 * request id, so a request without tracing can still be found by its id in a trace backend.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** The response (and forwarded request) header that carries the request id. */
export const REQUEST_ID_HEADER = 'dcdn-request-id';

/** The parts of a `traceparent` header. */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The span id of the caller: 16 lowercase hex digits, not all zero. */
  parentId: string;
  /** Two hex digits; bit 0 is `sampled`. */
  flags: string;
}

/**
 * Fresh random bytes, drawn in blocks: `randomBytes` per request costs a syscall-sized slice of
 * time that shows at tens of thousands of requests a second.
 */
let pool = Buffer.alloc(0);
let offset = 0;
function hex(bytes: number): string {
  if (offset + bytes > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const out = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return out;
}

/** A new request id: 32 lowercase hex digits (128 random bits), fit to be a W3C trace id. */
export function newRequestId(): string {
  return hex(16);
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Parses a `traceparent` header the way the W3C spec says a receiver must: version `ff` and
 * all-zero ids are invalid, version 00 must have exactly four fields, a later version may add
 * fields after the known ones. Anything else (including a repeated header) gives null, and the
 * request then starts a new trace.
 */
export function parseTraceparent(value: string | string[] | undefined): TraceContext | null {
  if (typeof value !== 'string') return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff') return null;
  if (version === '00' && rest !== undefined) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return null;
  return { traceId, parentId, flags };
}

/** What the ingress hands on for one request: its id and the `traceparent` the handler sees. */
export interface RequestTrace {
  requestId: string;
  traceId: string;
  /** The ingress's span id: the parent of whatever the handler does. */
  spanId: string;
  /** Whether the trace continues one the client started. */
  inherited: boolean;
  /** The client's span (its `traceparent`'s parent id), when the trace is inherited. */
  parentSpanId?: string;
  /** Whether the trace is sampled (the `traceparent` flag): only sampled spans are exported (otlp.ts). */
  sampled: boolean;
  /** The `traceparent` to forward: version 00, the trace id, the ingress span, the flags. */
  traceparent: string;
}

/**
 * The id and trace of a new request. With a valid incoming `traceparent` its trace id and
 * sampled flag are kept and the ingress's span becomes the handler's parent; without one a new
 * trace starts (trace id = request id, sampled).
 */
export function startTrace(incoming: string | string[] | undefined): RequestTrace {
  const requestId = newRequestId();
  const spanId = hex(8);
  const parent = parseTraceparent(incoming);
  const traceId = parent?.traceId ?? requestId;
  // Keep only the flags version 00 defines (sampled); unknown bits are not ours to pass on.
  const flags = parent ? (parseInt(parent.flags, 16) & 1 ? '01' : '00') : '01';
  return {
    requestId,
    traceId,
    spanId,
    inherited: parent !== null,
    ...(parent ? { parentSpanId: parent.parentId } : {}),
    sampled: flags === '01',
    traceparent: `00-${traceId}-${spanId}-${flags}`,
  };
}

const traces = new WeakMap<IncomingMessage, RequestTrace>();

/**
 * The id and trace of `req`, made the first time anyone asks (the proxy, an error answer, the
 * ingress's own endpoints), so that every path that answers a request finds the same id.
 */
export function traceOf(req: IncomingMessage): RequestTrace {
  let trace = traces.get(req);
  if (!trace) {
    trace = startTrace(req.headers.traceparent);
    traces.set(req, trace);
  }
  return trace;
}
