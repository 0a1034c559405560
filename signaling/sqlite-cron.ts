/**
 * The cron state of a SQLite control store (`cron` table of the apps file, created if absent,
 * so an existing file keeps all it has): per app the last tick claimed and the last run. One
 * process owns the file, but the claim is still a compare-and-set in one statement, so a
 * restarted signaling never runs a tick it ran before.
 */
import type Database from 'better-sqlite3';
import type { CronRun, CronState } from './control-store.ts';

export class SqliteCronTable {
  readonly #db: Database.Database;

  /** Creates the table in `db` (which has the `apps` table) if absent. */
  constructor(db: Database.Database) {
    this.#db = db;
    this.#db.exec(`CREATE TABLE IF NOT EXISTS cron (
      app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
      last_tick INTEGER NOT NULL DEFAULT 0,
      last_run TEXT
    )`);
  }

  claim(app: string, tick: number): boolean {
    if (!this.#db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app)) return false;
    const r = this.#db
      .prepare('INSERT INTO cron (app, last_tick) VALUES (?, ?) ON CONFLICT(app) DO UPDATE SET last_tick = excluded.last_tick WHERE cron.last_tick < excluded.last_tick')
      .run(app, tick);
    return r.changes > 0;
  }

  record(app: string, run: CronRun): void {
    if (!this.#db.prepare('SELECT 1 FROM apps WHERE name = ?').get(app)) return;
    this.#db.prepare('INSERT INTO cron (app, last_tick, last_run) VALUES (?, 0, ?) ON CONFLICT(app) DO UPDATE SET last_run = excluded.last_run').run(app, JSON.stringify(run));
  }

  states(): CronState[] {
    const rows = this.#db.prepare('SELECT app, last_tick, last_run FROM cron ORDER BY app').all() as Array<{ app: string; last_tick: number; last_run: string | null }>;
    return rows.map((r) => ({ app: r.app, lastTick: Number(r.last_tick), lastRun: readRun(r.last_run) }));
  }
}

/** A stored run; one this build cannot read counts as none. */
export function readRun(value: unknown): CronRun | null {
  try {
    const run = (typeof value === 'string' ? JSON.parse(value) : value) as CronRun | null;
    return run && typeof run === 'object' && typeof run.ok === 'boolean' ? run : null;
  } catch {
    return null;
  }
}
