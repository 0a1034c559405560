import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, type ErrorCode } from '../protocol/index.ts';
import { REQUEST_ID_HEADER, traceOf } from './request-id.ts';

/** Seconds a client is asked to wait after a 503 (`Retry-After`). */
export const RETRY_AFTER_SECONDS = 1;

/**
 * How long a connection the ingress closes after an error keeps reading (and dropping) what the
 * client still sends. Closing a socket with unread input makes the kernel send a reset, and a
 * client still uploading then loses the error response it had not read yet (nginx's
 * `lingering_close` exists for the same reason).
 */
export const LINGER_MS = 5_000;

/**
 * The JSON body of every error the ingress answers: `{"error":{"code","message","status","requestId"}}`
 * (`requestId` as in the `dcdn-request-id` header, so a user pasting the body gives the operator
 * what finds the request in the logs).
 */
export function errorBody(code: ErrorCode, message: string, requestId?: string): string {
  return JSON.stringify({ error: { code, message, status: ERRORS[code].status, ...(requestId ? { requestId } : {}) } }) + '\n';
}

/**
 * Answers a request with one of dcdn's error codes: the status from the registry, the code in
 * the `dcdn-error` header and a JSON body a person can read and a script can match on. Every
 * error the ingress itself produces goes through here (or `rawErrorResponse` where Node's
 * parser rejected the request before there was a response object).
 *
 * With `connection: close` in `extra` and the request body not fully read, the connection
 * lingers (`LINGER_MS`) so that a client still uploading reads this answer instead of a reset.
 */
export function sendError(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    // The head is gone, so the status can't change: cut the connection so that the response
    // can't look complete (no terminating chunk, or fewer bytes than Content-Length).
    res.destroy();
    return;
  }
  if (res.writableEnded) return;
  const status = ERRORS[code].status;
  const requestId = traceOf(res.req).requestId;
  const body = errorBody(code, message, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'dcdn-error': code,
    [REQUEST_ID_HEADER]: requestId,
    ...extra,
  };
  if (status === 503) headers['retry-after'] = String(RETRY_AFTER_SECONDS);
  if (extra.connection === 'close' && res.socket && !res.req.complete) lingerOnClose(res.socket);
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * A whole coded error response as raw bytes, for sockets that have no `ServerResponse`: what
 * Node's HTTP parser rejected, `CONNECT` requests. Always `connection: close`.
 */
export function rawErrorResponse(code: ErrorCode, message: string, requestId?: string): string {
  const status = ERRORS[code].status;
  const body = errorBody(code, message, requestId);
  const id = requestId ? `${REQUEST_ID_HEADER}: ${requestId}\r\n` : '';
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\ndcdn-error: ${code}\r\n${id}connection: close\r\n\r\n${body}`
  );
}

/**
 * Sends `bytes` and closes the socket the gentle way: our side ends at once, what the client
 * still sends is read and dropped, and the socket is destroyed when the client ends too or
 * after `LINGER_MS`, whichever comes first.
 */
export function endLingering(socket: Socket, bytes?: string): void {
  if (bytes === undefined) socket.end();
  else socket.end(bytes);
  linger(socket);
}

/**
 * Node closes a `connection: close` response's socket with `destroySoon()` once the response
 * is flushed; for a request whose body is still arriving, that close turns into a reset that
 * can overtake the response. Replace it, for this socket only, with a lingering close.
 */
function lingerOnClose(socket: Socket): void {
  const lingering = socket as Socket & { destroySoon?: () => void };
  lingering.destroySoon = function (this: Socket) {
    endLingering(this);
  };
}

const lingeringSockets = new WeakSet<Socket>();

/** Whether `socket` is closing the gentle way; whatever the client still sends there is dropped. */
export function isLingering(socket: Socket): boolean {
  return lingeringSockets.has(socket);
}

function linger(socket: Socket): void {
  if (socket.destroyed || lingeringSockets.has(socket)) return;
  lingeringSockets.add(socket);
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref?.();
  socket.once('close', () => clearTimeout(timer));
  // The client is done (or gave up): nothing left to protect.
  socket.once('end', () => socket.destroy());
  socket.resume();
}

/** The code the ingress answers with for a status some other layer (fastify, Node) chose. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 404:
      return 'INGRESS_NOT_FOUND';
    case 408:
      return 'INGRESS_REQUEST_TIMEOUT';
    case 413:
      return 'INGRESS_BODY_TOO_LARGE';
    case 414:
      return 'INGRESS_URL_TOO_LONG';
    case 417:
      return 'INGRESS_EXPECTATION_FAILED';
    case 431:
      return 'INGRESS_HEADERS_TOO_LARGE';
    case 501:
      return 'INGRESS_NOT_IMPLEMENTED';
    case 503:
      return 'INGRESS_SHUTTING_DOWN';
    default:
      return status >= 400 && status < 500 ? 'INGRESS_BAD_REQUEST' : 'INGRESS_INTERNAL_ERROR';
  }
}
