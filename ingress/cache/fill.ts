/**
 * A response being fetched for the cache while other requests for the same key wait on it
 * (coalescing). They learn when its head is known, when its body grows, and how it ended.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheEntry } from './cache-store.ts';
import { drained, notModified, notModifiedHeaders } from './serve-entry.ts';

export type FillState = 'pending' | 'streaming' | 'stored' | 'failed';

export class Fill {
  readonly key: string;
  state: FillState = 'pending';
  status = 0;
  /** The body's declared length, when the head gave one. */
  length: number | undefined;
  /** Whether the response varies on request headers (a follower then re-checks its own). */
  entryVaries = false;
  /** The headers as stored (set once streaming). */
  headers: string[] = [];
  /** The body so far; shared with the sink that fills it. */
  readonly chunks: Buffer[] = [];
  entry: CacheEntry | null = null;
  #waiters: Array<() => void> = [];

  constructor(key: string) {
    this.key = key;
  }

  /** Resolves at the next change of state or growth of the body. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  streaming(status: number, length: number | undefined, varies: boolean, headers: string[]): void {
    if (this.state !== 'pending') return;
    this.state = 'streaming';
    this.status = status;
    this.length = length;
    this.entryVaries = varies;
    this.headers = headers;
    this.#notify();
  }

  grew(): void {
    this.#notify();
  }

  stored(entry: CacheEntry): void {
    if (this.state === 'failed') return;
    this.state = 'stored';
    this.entry = entry;
    this.#notify();
  }

  fail(): void {
    if (this.state === 'stored' || this.state === 'failed') return;
    this.state = 'failed';
    this.#notify();
  }

  /**
   * Streams the body to a follower as it arrives, at the follower's own pace (what is not yet
   * read stays in `chunks`, which the cache holds anyway). A fill that fails midway cuts the
   * follower's connection, as a cut response would. Returns the body bytes written.
   */
  async streamTo(req: IncomingMessage, res: ServerResponse, extra: string[]): Promise<number> {
    if (res.destroyed || res.headersSent) return 0;
    if (notModified(req, this.headers)) {
      res.writeHead(304, [...notModifiedHeaders(this.headers), ...extra]);
      res.end();
      return 0;
    }
    res.writeHead(this.status, [...this.headers, ...extra]);
    if (req.method === 'HEAD') {
      res.end();
      return 0;
    }
    let at = 0;
    let written = 0;
    for (;;) {
      while (at < this.chunks.length) {
        if (res.destroyed) return written;
        const chunk = this.chunks[at++]!;
        written += chunk.byteLength;
        if (!res.write(chunk)) await drained(res);
      }
      if (this.state === 'stored') break;
      if (this.state === 'failed') {
        res.destroy();
        return written;
      }
      await this.changed();
    }
    res.end();
    return written;
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
