/**
 * Messages between signaling nodes over Redis Streams: one inbox stream per node
 * (`inbox:<node>`, MAXLEN ~ 10 000). Every send goes over the node's one command connection, and
 * Redis runs a connection's commands in the order they arrive, so messages from one node to
 * another keep their order without waiting for each reply. The inbox is read by the node's one
 * blocking reader (stream-reader.ts), shared with the presence tail: one connection and one
 * wake-up per node instead of two, and the inbox cursor survives reconnects, so a dropped
 * connection loses nothing (the tail resyncs instead, by design).
 */
import type { RedisLink } from './redis-link.ts';
import type { StreamReader } from './stream-reader.ts';
import { PresenceUnavailableError, type BusMessage, type NodeBus } from './types.ts';

export class RedisBus implements NodeBus {
  readonly #link: RedisLink;
  readonly #reader: StreamReader;
  readonly #handlers: Array<(m: BusMessage, from: string) => void> = [];
  #closed = false;

  constructor(link: RedisLink, reader: StreamReader) {
    this.#link = link;
    this.#reader = reader;
  }

  /** Appends to the target's inbox; rejects with PresenceUnavailableError if Redis is unreachable or the target is not live. */
  async send(node: string, m: BusMessage): Promise<void> {
    if (this.#closed) throw new PresenceUnavailableError('cluster bus: closed');
    const link = this.#link;
    const ok = await link.script('send', 'dcdnSend', node, link.nodeId, JSON.stringify(m), link.timings.inboxMaxLen);
    if (ok !== 1) throw new PresenceUnavailableError(`cluster bus: signaling node ${node} is not live`);
  }

  /** Handlers get every message of a type this version knows, in the order each sender sent them. */
  onMessage(h: (m: BusMessage, from: string) => void): void {
    this.#handlers.push(h);
    if (this.#handlers.length === 1) this.#reader.setInbox((id, fields) => this.#deliver(id, fields.get('f') ?? '', fields.get('m') ?? ''));
  }

  #deliver(id: string, from: string, json: string): void {
    if (this.#closed) return;
    let m: BusMessage;
    try {
      m = JSON.parse(json) as BusMessage;
    } catch {
      this.#link.log('warn', 'cluster bus: dropped a message that is not JSON', { id, from });
      return;
    }
    // Mixed versions during a rolling upgrade: what this version does not know is skipped.
    if (m?.v !== 1 || !KNOWN.has(m.t)) return;
    for (const h of this.#handlers) h(m, from);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

const KNOWN: ReadonlySet<string> = new Set<BusMessage['t']>(['signal', 'unreachable', 'check', 'checked', 'kick', 'drain', 'cron', 'cron-result']);
