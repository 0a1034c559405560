import Database from 'better-sqlite3';
import { preparePrivateDbFile } from './private-files.ts';
import { randomUUID } from 'node:crypto';

/** What a ban matches: a tab (its stable host id), an address, or every tab of one invite. */
export type BanKind = 'host' | 'address' | 'invite';

export interface Ban {
  id: string;
  kind: BanKind;
  value: string;
  reason: string;
  createdAt: string;
}

/**
 * Hosts the operator banned (`dcdn hosts ban`), durable in SQLite beside the app store
 * (`:memory:` when signaling runs without one). Checked when a host says hello, and for
 * addresses and invites again before the upgrade.
 */
export class BanList {
  readonly #db: Database.Database;

  constructor(path: string) {
    // Secrets and tokens' subjects live here: owner-only, -wal and -shm included.
    preparePrivateDbFile(path);
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS bans (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      value TEXT NOT NULL,
      reason TEXT NOT NULL DEFAULT '',
      created_at TEXT NOT NULL,
      UNIQUE (kind, value)
    )`);
  }

  add(kind: BanKind, value: string, reason = ''): Ban {
    const ban: Ban = { id: randomUUID().slice(0, 8), kind, value, reason: reason.slice(0, 200), createdAt: new Date().toISOString() };
    this.#db.prepare('INSERT INTO bans (id, kind, value, reason, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, value) DO UPDATE SET reason = excluded.reason').run(ban.id, kind, value, ban.reason, ban.createdAt);
    return this.#db.prepare('SELECT id, kind, value, reason, created_at AS createdAt FROM bans WHERE kind = ? AND value = ?').get(kind, value) as Ban;
  }

  remove(id: string): boolean {
    return this.#db.prepare('DELETE FROM bans WHERE id = ?').run(id).changes > 0;
  }

  list(): Ban[] {
    return this.#db.prepare('SELECT id, kind, value, reason, created_at AS createdAt FROM bans ORDER BY created_at').all() as Ban[];
  }

  /** The reason of the first ban matching this host, or null. */
  match(host: { hostId?: string; address?: string; sub?: string | undefined }): string | null {
    const check = (kind: BanKind, value: string | undefined) =>
      value ? ((this.#db.prepare('SELECT reason FROM bans WHERE kind = ? AND value = ?').get(kind, value) as { reason: string } | undefined)?.reason ?? null) : null;
    return check('host', host.hostId) ?? check('address', host.address) ?? check('invite', host.sub);
  }

  close(): void {
    this.#db.close();
  }
}
