/**
 * One HTTP exchange for the cluster tests, through an {@link NsReach} (so it works into a
 * namespace), never throwing: the result says what arrived, including whether the response head
 * had arrived before a failure (a cut after the head is a different fault from a refused request).
 */
import { request, type IncomingHttpHeaders } from 'node:http';
import { DIRECT, type NsReach } from './ns-gateway.ts';

/** Default bound on one exchange (head and body). */
export const HTTP_CALL_TIMEOUT_MS = 15_000;

export interface HttpResult {
  /** 0 when no head arrived. */
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The head had arrived (even if the body then failed). */
  headArrived: boolean;
  /** The body arrived complete. */
  complete: boolean;
  /** What went wrong at the socket level, if anything (ECONNREFUSED, timeout, aborted). */
  failure: string | null;
  ms: number;
}

export interface HttpCallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  reach?: NsReach;
}

export function httpCall(url: string, options: HttpCallOptions = {}): Promise<HttpResult> {
  const started = performance.now();
  const reach = options.reach ?? DIRECT;
  return new Promise((resolve) => {
    let settled = false;
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let body = '';
    let headArrived = false;
    const finish = (complete: boolean, failure: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, headers, body, headArrived, complete, failure, ms: performance.now() - started });
    };
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: reach.agent }, (res) => {
      status = res.statusCode ?? 0;
      headers = res.headers;
      headArrived = true;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 1_000_000) body += d;
      });
      res.on('end', () => finish(res.complete, res.complete ? null : 'aborted'));
      res.on('aborted', () => finish(false, 'aborted'));
      res.on('error', (e: Error) => finish(false, e.message));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      finish(false, `timeout after ${options.timeoutMs ?? HTTP_CALL_TIMEOUT_MS} ms`);
    }, options.timeoutMs ?? HTTP_CALL_TIMEOUT_MS);
    req.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    req.end(options.body);
  });
}

/** `httpCall` and parse the body as JSON (null when it is not JSON). */
export async function httpJson<T = unknown>(url: string, options: HttpCallOptions = {}): Promise<{ status: number; json: T | null; res: HttpResult }> {
  const res = await httpCall(url, options);
  let json: T | null = null;
  try {
    json = JSON.parse(res.body) as T;
  } catch {
    json = null;
  }
  return { status: res.status, json, res };
}
