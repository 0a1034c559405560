/**
 * Answers a client from a stored response: a 304 when its own validators match (RFC 9110
 * §13.1), headers only for HEAD, else the body from memory with the socket's backpressure.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheEntry } from './cache-store.ts';

/** The `dcdn-cache` values: every answer of an ingress with a cache carries one (docs/cache.md). */
export type CacheLabel = 'HIT' | 'MISS' | 'STALE' | 'BYPASS';

/** Headers a 304 carries over from the stored response (RFC 9110 §15.4.5). */
const NOT_MODIFIED_KEEPS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']);

/**
 * Writes `entry` to `res` with `Age` and `dcdn-cache: label` and the `extra` headers; resolves
 * when the answer is out or the client went away. Returns the body bytes written.
 */
export async function serveEntry(req: IncomingMessage, res: ServerResponse, entry: CacheEntry, label: CacheLabel, extra: string[]): Promise<number> {
  const age = String(Math.max(0, Math.floor(entry.policy.age())));
  if (res.destroyed || res.headersSent) return 0;
  if (notModified(req, entry.headers)) {
    res.writeHead(304, [...notModifiedHeaders(entry.headers), 'age', age, 'dcdn-cache', label, ...extra]);
    res.end();
    return 0;
  }
  res.writeHead(entry.status, [...entry.headers, 'age', age, 'dcdn-cache', label, ...extra]);
  if (req.method === 'HEAD' || entry.size === 0) {
    res.end();
    return 0;
  }
  const chunks = entry.chunks;
  if (chunks.length === 1) {
    res.end(chunks[0]);
    return entry.size;
  }
  let written = 0;
  for (const chunk of chunks) {
    if (res.destroyed) return written;
    written += chunk.byteLength;
    if (!res.write(chunk)) await drained(res);
  }
  res.end();
  return written;
}

/** The headers of a 304 for a response with `headers` (flat, lower-case names). */
export function notModifiedHeaders(headers: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (NOT_MODIFIED_KEEPS.has(headers[i]!)) kept.push(headers[i]!, headers[i + 1]!);
  return kept;
}

/** Resolves when `res` can take more, or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Whether the client's conditional headers say it already has this response: If-None-Match
 * against the ETag (weak comparison, RFC 9110 §13.1.2), else If-Modified-Since against
 * Last-Modified (§13.1.3).
 */
export function notModified(req: IncomingMessage, headers: string[]): boolean {
  const inm = req.headers['if-none-match'];
  const ims = req.headers['if-modified-since'];
  if (inm === undefined && ims === undefined) return false;
  let etag: string | undefined;
  let lastModified: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'etag') etag = headers[i + 1];
    else if (headers[i] === 'last-modified') lastModified = headers[i + 1];
  }
  if (inm !== undefined) {
    if (etag === undefined) return inm.trim() === '*';
    const weak = (t: string) => t.trim().replace(/^W\//, '');
    return inm.split(',').some((t) => t.trim() === '*' || weak(t) === weak(etag));
  }
  if (lastModified === undefined) return false;
  const since = Date.parse(ims!);
  const modified = Date.parse(lastModified);
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since;
}
