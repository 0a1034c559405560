/**
 * One timed `GET` on a keep-alive agent, as the kv and sql sections measure a handler's calls:
 * the body is read whole (the apps answer with small JSON), and anything but 200 fails the run.
 */
import { type Agent, request } from 'node:http';

/** `GET url` on `agent`; resolves with the milliseconds to the end of the body and the body. */
export function timedGet(agent: Agent, url: string, timeoutMs = 60_000): Promise<{ ms: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => {
        const ms = performance.now() - t0;
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: status ${res.statusCode}: ${body.slice(0, 300)}`));
        else resolve({ ms, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
