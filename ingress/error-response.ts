import type { ServerResponse } from 'node:http';
import { ERRORS, type ErrorCode } from '../protocol/index.ts';

/** Seconds a client is asked to wait after a 503 (`Retry-After`). */
export const RETRY_AFTER_SECONDS = 1;

/**
 * Answers a request with one of dcdn's error codes: the status from the registry, the code in
 * the `dcdn-error` header and a JSON body a person can read and a script can match on. Every
 * error the ingress itself produces goes through here.
 */
export function sendError(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    // The head is gone, so the status can't change: cut the connection so that the response
    // can't look complete (no terminating chunk, or fewer bytes than Content-Length).
    res.destroy();
    return;
  }
  const status = ERRORS[code].status;
  const body = JSON.stringify({ error: { code, message, status } }) + '\n';
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'dcdn-error': code,
    ...extra,
  };
  if (status === 503) headers['retry-after'] = String(RETRY_AFTER_SECONDS);
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
