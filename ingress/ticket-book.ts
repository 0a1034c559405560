import { randomBytes } from 'node:crypto';

/** What a ticket lets its holder do: attach one WebSocket for one connection attempt of one host. */
export interface Ticket {
  hostId: string;
  conn: string;
}

/**
 * One-time tickets for hosts dialling the ingress's WebSocket endpoint. The ingress hands one to
 * a host over signaling (which authenticated the host); the host presents it in the upgrade
 * request, where it is checked before the upgrade and then spent.
 */
export class TicketBook {
  readonly #tickets = new Map<string, Ticket & { expires: number }>();
  readonly #ttlMs: number;

  /** @param ttlMs how long a ticket stays valid. Default 30000 ms. */
  constructor(ttlMs = 30_000) {
    this.#ttlMs = ttlMs;
  }

  issue(ticket: Ticket, now = Date.now()): string {
    this.#sweep(now);
    const id = randomBytes(24).toString('base64url');
    this.#tickets.set(id, { ...ticket, expires: now + this.#ttlMs });
    return id;
  }

  /** Whether a ticket is valid, without spending it. */
  check(id: string, now = Date.now()): boolean {
    const t = this.#tickets.get(id);
    return t !== undefined && t.expires > now;
  }

  /** Spends a ticket; undefined when it is unknown, spent or expired. */
  redeem(id: string, now = Date.now()): Ticket | undefined {
    const t = this.#tickets.get(id);
    this.#tickets.delete(id);
    return t && t.expires > now ? { hostId: t.hostId, conn: t.conn } : undefined;
  }

  #sweep(now: number): void {
    for (const [id, t] of this.#tickets) if (t.expires <= now) this.#tickets.delete(id);
  }
}
