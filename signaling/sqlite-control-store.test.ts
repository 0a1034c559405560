import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { controlStoreSuite, bundle, type ControlStoreHarness } from '../test/control-store-suite.ts';
import { cronStoreSuite } from '../test/cron-store-suite.ts';
import { AppStore } from './app-store.ts';
import { BanList } from './bans.ts';
import type { ControlStore } from './control-store.ts';
import { SqliteControlStore } from './sqlite-control-store.ts';

/** A store on a fresh SQLite file; `another` opens more stores on the same file, as other nodes would. */
const harness = async (): Promise<ControlStoreHarness> => {
  const dir = mkdtempSync(join(tmpdir(), 'dcdn-control-'));
  const path = join(dir, 'apps.db');
  const store = SqliteControlStore.open(path);
  const others: ControlStore[] = [];
  return {
    store,
    async another() {
      const other = SqliteControlStore.open(path);
      others.push(other);
      return other;
    },
    async cleanup() {
      for (const s of [store, ...others]) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

controlStoreSuite('SqliteControlStore', harness);
cronStoreSuite('SqliteControlStore', harness);

describe('SqliteControlStore over the stores signaling had', () => {
  it('hears writes made straight to its AppStore, and leaves stores it did not open open', async () => {
    const apps = new AppStore(':memory:');
    const bans = new BanList(':memory:');
    const store = new SqliteControlStore({ apps, bans });
    const seen: number[] = [];
    store.watch((c) => seen.push(c.version));
    apps.deploy('direct', bundle('x'));
    expect(seen).toEqual([1]);
    expect(await store.version()).toBe(1);
    await store.close();
    expect(apps.list().map((a) => a.name)).toEqual(['direct']);
    apps.close();
    bans.close();
  });
});

describe('SqliteControlStore cron state on a file from before cron triggers', () => {
  it('adds the cron table and keeps every app and version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcdn-control-old-'));
    const path = join(dir, 'apps.db');
    try {
      const old = SqliteControlStore.open(path);
      await old.deploy('hello', bundle('v1'), 'first', { kv: ['CACHE'] });
      await old.close();
      // What a file written before this build looks like: no cron table.
      const raw = new Database(path);
      raw.exec('DROP TABLE cron');
      raw.close();
      const store = SqliteControlStore.open(path);
      expect(await store.list()).toMatchObject([{ name: 'hello', activeVersion: 1, versions: [{ message: 'first', config: { kv: ['CACHE'] } }] }]);
      expect(await store.cronStates()).toEqual([]);
      expect(await store.claimCronTick('hello', 60_000)).toBe(true);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
