/**
 * Load on one HTTP target from this process: autocannon for request rates and latencies (its
 * own histogram has 1 ms resolution, so latencies are taken from its per-response events), and
 * plain `node:http` requests for big downloads and uploads.
 */
import autocannon from 'autocannon';
import { request } from 'node:http';
import { mbPerSecond, percentile } from './stats.ts';

export interface LoadResult {
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Responses counted (status 200). */
  responses: number;
  /** Connection errors, timeouts and non-200 answers. */
  failures: number;
}

/** `connections` keep-alive connections sending `GET url` back to back for `seconds`. */
export function load(url: string, connections: number, seconds: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    let other = 0;
    let t0 = performance.now();
    const instance = autocannon({ url, connections, duration: seconds, pipelining: 1, timeout: 10 }, (err, result) => {
      if (err) return reject(err);
      const ms = performance.now() - t0;
      resolve({
        rps: latencies.length / (ms / 1000),
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        responses: latencies.length,
        failures: result.errors + result.timeouts + other,
      });
    });
    instance.once('start', () => (t0 = performance.now()));
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status === 200) latencies.push(ms);
      else other++;
    });
  });
}

/** Downloads `GET url` (expecting `bytes` bytes); resolves with MB/s. */
export function download(url: string, bytes: number, timeoutMs = 600_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { timeout: timeoutMs }, (res) => {
      let got = 0;
      res.on('data', (chunk: Buffer) => (got += chunk.byteLength));
      res.on('end', () => {
        if (res.statusCode !== 200 || got !== bytes) reject(new Error(`download ${url}: status ${res.statusCode}${res.headers['dcdn-error'] ? ` ${String(res.headers['dcdn-error'])}` : ''}, ${got}/${bytes} bytes`));
        else resolve(mbPerSecond(bytes, performance.now() - t0));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`download ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** POSTs `bytes` bytes to `url`, which must answer their count; resolves with MB/s. */
export function upload(url: string, bytes: number, timeoutMs = 600_000): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { method: 'POST', timeout: timeoutMs, headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (s: string) => (text += s));
      res.on('end', () => {
        if (res.statusCode !== 200 || text.trim() !== String(bytes)) reject(new Error(`upload ${url}: status ${res.statusCode}, answer ${text.slice(0, 80)}`));
        else resolve(mbPerSecond(bytes, performance.now() - t0));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`upload ${url} timed out`)));
    req.on('error', reject);
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.byteLength, bytes - sent);
        sent += n;
        if (!req.write(n === chunk.byteLength ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}
