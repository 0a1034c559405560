/**
 * The one blocking reader of a signaling node: a single `XREAD BLOCK` over the presence events
 * stream (for every tail) and this node's bus inbox. One connection, because a node needs one
 * wake-up for both and a blocked connection can serve no other command; the bus and the tails
 * keep separate cursors, and the inbox cursor survives reconnects, so no bus message is lost
 * across a dropped connection (SCALE-OUT appendix A: 0 of 3000, where pub/sub lost 260).
 */
import type { RedisLink } from './redis-link.ts';

/** A stream entry's fields as a map. */
export type Fields = Map<string, string>;

interface Tail {
  cursor: string;
  onEntry: (id: string, fields: Fields) => void;
  onReset: () => void;
}

/** How long the loop waits before reading again after an error. */
const RETRY_MS = [50, 100, 250, 500, 1000];
/** How often and how long CLIENT UNBLOCK is retried when it arrives before the XREAD it must wake. */
const UNBLOCK_TRIES = 5;
const UNBLOCK_RETRY_MS = 20;

export class StreamReader {
  readonly #link: RedisLink;
  readonly #eventsKey: string;
  readonly #inboxKey: string;
  readonly #tails = new Set<Tail>();
  #inbox: ((id: string, fields: Fields) => void) | null = null;
  #inboxCursor = '0-0';
  #closed = false;
  #running = false;
  /** What the XREAD in flight reads, to know whether a change needs it woken. */
  #reading: { events: string | null; inbox: boolean } | null = null;
  #idle: (() => void) | null = null;
  #readerId: number | null = null;

  constructor(link: RedisLink) {
    this.#link = link;
    this.#eventsKey = link.key('events');
    this.#inboxKey = link.key(`inbox:${link.nodeId}`);
    link.reader.on('ready', () => {
      this.#readerId = null;
    });
    // After an outage or a new dataset the tails may have missed entries: their consumers resync.
    link.onUp(() => this.resetTails());
    link.onGenChange(() => this.resetTails());
  }

  /** Adds a tail of the events stream from `cursor`; returns its stop function. */
  addTail(cursor: string, onEntry: Tail['onEntry'], onReset: () => void): () => void {
    const tail: Tail = { cursor, onEntry, onReset };
    this.#tails.add(tail);
    void this.#checkTrimmed([tail]);
    this.#changed();
    return () => {
      this.#tails.delete(tail);
    };
  }

  /** Starts reading this node's inbox (from its beginning: what was sent before is still for us). */
  setInbox(handler: (id: string, fields: Fields) => void): void {
    this.#inbox = handler;
    this.#changed();
  }

  /** Every tail gets onReset and is dropped. */
  resetTails(): void {
    const tails = [...this.#tails];
    this.#tails.clear();
    for (const t of tails) t.onReset();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#tails.clear();
    this.#inbox = null;
    this.#idle?.();
  }

  /** The oldest cursor of the tails: where the shared read starts. */
  #eventsCursor(): string | null {
    let min: string | null = null;
    for (const t of this.#tails) if (min === null || compareIds(t.cursor, min) < 0) min = t.cursor;
    return min;
  }

  #changed(): void {
    if (!this.#running) {
      this.#running = true;
      void this.#loop();
      return;
    }
    if (this.#idle) {
      this.#idle();
      return;
    }
    const r = this.#reading;
    if (!r) return;
    const events = this.#eventsCursor();
    const needsWake = (events !== null && (r.events === null || compareIds(events, r.events) < 0)) || (this.#inbox !== null && !r.inbox);
    if (needsWake) void this.#unblock();
  }

  /** Wakes the blocked XREAD (it returns nil) so the next one reads the new set of streams. */
  async #unblock(): Promise<void> {
    for (let i = 0; i < UNBLOCK_TRIES && this.#reading && this.#readerId !== null; i++) {
      const done = await this.#link.cmd.client('UNBLOCK', this.#readerId).catch(() => 0);
      if (done === 1) return;
      await sleep(UNBLOCK_RETRY_MS);
    }
  }

  async #loop(): Promise<void> {
    const link = this.#link;
    const t = link.timings;
    let failures = 0;
    while (!this.#closed) {
      if (this.#tails.size === 0 && this.#inbox === null) {
        await new Promise<void>((resolve) => (this.#idle = resolve));
        this.#idle = null;
        continue;
      }
      // Asked before it blocks (a command on a blocked connection waits), for CLIENT UNBLOCK.
      if (this.#readerId === null) this.#readerId = Number(await link.reader.client('ID').catch(() => null)) || null;
      // Read after that await, so a tail added meanwhile is in this XREAD.
      const events = this.#eventsCursor();
      const inbox = this.#inbox !== null;
      if (events === null && !inbox) continue;
      const keys: string[] = [];
      const ids: string[] = [];
      if (events !== null) keys.push(this.#eventsKey), ids.push(events);
      if (inbox) keys.push(this.#inboxKey), ids.push(this.#inboxCursor);
      this.#reading = { events, inbox };
      let reply: Array<[string, Array<[string, string[]]>]> | null;
      try {
        reply = (await link.reader.xread('COUNT', t.readCount, 'BLOCK', t.blockMs, 'STREAMS', ...keys, ...ids)) as typeof reply;
        failures = 0;
      } catch {
        this.#reading = null;
        if (this.#closed) break;
        // The tails may have missed entries while the connection was down; the inbox resumes from its cursor.
        this.resetTails();
        await sleep(RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)]!);
        continue;
      }
      this.#reading = null;
      if (this.#closed) break;
      for (const [key, entries] of reply ?? []) {
        if (key === this.#inboxKey) {
          for (const [id, flat] of entries) {
            this.#inboxCursor = id;
            this.#inbox?.(id, toFields(flat));
          }
        } else {
          this.#deliverEvents(entries);
          if (entries.length >= t.readCount) await this.#checkTrimmed([...this.#tails]);
        }
      }
    }
    this.#running = false;
  }

  #deliverEvents(entries: Array<[string, string[]]>): void {
    for (const [id, flat] of entries) {
      const fields = toFields(flat);
      for (const tail of [...this.#tails]) {
        if (!this.#tails.has(tail) || compareIds(id, tail.cursor) <= 0) continue;
        tail.cursor = id;
        tail.onEntry(id, fields);
      }
    }
  }

  /** Resets the tails whose cursor points before entries the stream has trimmed (they missed some). */
  async #checkTrimmed(tails: Tail[]): Promise<void> {
    if (tails.length === 0) return;
    let first: string | null;
    try {
      first = await trimmedBefore(this.#link, this.#eventsKey);
    } catch {
      return; // an outage resets the tails anyway
    }
    if (first === null) return;
    for (const tail of tails) {
      // A cursor older than the oldest entry kept: what lay between is gone (at worst the cursor
      // itself was the last entry trimmed, and the consumer takes one snapshot more than needed).
      if (!this.#tails.has(tail) || compareIds(tail.cursor, first) >= 0) continue;
      this.#tails.delete(tail);
      this.#link.log('warn', "cluster: the events stream was trimmed past a tail's cursor; resyncing", { node: this.#link.nodeId, cursor: tail.cursor, firstKept: first });
      tail.onReset();
    }
  }
}

/** XINFO STREAM as a map; empty when the stream does not exist (yet, or after a flush). */
export async function streamInfo(link: RedisLink, key: string): Promise<Map<string, unknown>> {
  // "no such key" is an answer, caught before link.call would count it as an outage.
  const flat = (await link.call('xinfo', link.cmd.xinfo('STREAM', key).catch((err: Error) => {
    if (/no such key/i.test(err.message)) return [];
    throw err;
  }))) as unknown[];
  const f = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), flat[i + 1]);
  return f;
}

/**
 * The id of the oldest entry a stream still holds, if it has ever trimmed any (null if it has
 * not, or does not exist). Redis 7's XINFO STREAM: `entries-added` counts every entry ever
 * added, `length` those kept; `max-deleted-entry-id` tracks XDEL only, not MAXLEN trimming.
 */
export async function trimmedBefore(link: RedisLink, key: string): Promise<string | null> {
  const f = await streamInfo(link, key);
  if (!(Number(f.get('entries-added')) > Number(f.get('length')))) return null;
  return String(f.get('recorded-first-entry-id') ?? '0-0');
}

/** Orders two stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am - bm || as - bs;
}

function toFields(flat: string[]): Fields {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
  return m;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
