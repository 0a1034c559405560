import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlStoreSuite, bundle } from '../test/control-store-suite.ts';
import { cronStoreSuite } from '../test/cron-store-suite.ts';
import { AppStore } from './app-store.ts';
import { BanList } from './bans.ts';
import type { ControlStore } from './control-store.ts';
import { SqliteControlStore } from './sqlite-control-store.ts';

controlStoreSuite('SqliteControlStore', async () => {
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
});

cronStoreSuite('SqliteControlStore', async () => {
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
});

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
