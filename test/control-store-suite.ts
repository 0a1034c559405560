import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControlCache } from '../signaling/control-cache.ts';
import type { ControlChange, ControlStore } from '../signaling/control-store.ts';
import { MAX_BUNDLE_BYTES } from '../signaling/app-store.ts';

/** What a backend's test file hands the suite: a fresh, empty store, and more instances on the same data. */
export interface ControlStoreHarness {
  store: ControlStore;
  /** Another instance (its own connections) on the same data, as a second signaling node has. */
  another(): Promise<ControlStore>;
  /** Closes the stores and removes the data. */
  cleanup(): Promise<void>;
}

export const bundle = (text: string) => `export default { fetch() { return new Response(${JSON.stringify(text)}); } };`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** The error code a promise rejects with. */
export async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? `(no code: ${(err as Error).message})`;
  }
  return undefined;
}

/** Resolves once `cond()` holds (checked on every change and every 10 ms), or fails after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Opens a harness with `make` before each test of the enclosing `describe` and cleans it up after;
 * `opened` hands it to the suite. Every store suite runs its tests on a fresh store this way.
 */
export function harnessPerTest(make: () => Promise<ControlStoreHarness>, opened: (h: ControlStoreHarness) => void): void {
  let h: ControlStoreHarness | undefined;
  beforeEach(async () => {
    h = await make();
    opened(h);
  });
  afterEach(async () => {
    await h?.cleanup();
    h = undefined;
  });
}

/**
 * The conformance suite: every AppStore and BanList behaviour signaling relied on, through the
 * async ControlStore, plus what a cluster needs of any store (versions unique under concurrent
 * deploys from two instances, one version from concurrent deployIfChanged, shared keys, a
 * version bumped and watched on every write, the ControlCache on top).
 *
 * @example
 * ```ts
 * controlStoreSuite('SqliteControlStore', async () => {
 *   const path = join(mkdtempSync(join(tmpdir(), 'dcdn-cs-')), 'apps.db');
 *   const store = SqliteControlStore.open(path);
 *   return { store, another: async () => SqliteControlStore.open(path), cleanup: () => store.close() };
 * });
 * ```
 */
export function controlStoreSuite(name: string, make: () => Promise<ControlStoreHarness>): void {
  describe(`${name} (ControlStore conformance)`, () => {
    let h: ControlStoreHarness;
    let store: ControlStore;
    harnessPerTest(make, (opened) => {
      h = opened;
      store = opened.store;
    });

    it('deploys versions, lists them without code, and serves each version\'s code', async () => {
      const v1 = await store.deploy('hello', bundle('v1'), 'first', {});
      expect(v1).toMatchObject({ app: 'hello', version: 1, sha256: sha(bundle('v1')), size: bundle('v1').length, message: 'first' });
      await store.deploy('hello', bundle('v2'), '', { kv: ['CACHE'] });
      const [app] = await store.list();
      expect(app).toMatchObject({ name: 'hello', activeVersion: 2, secrets: [], versions: [{ version: 1, message: 'first' }, { version: 2, config: { kv: ['CACHE'] } }] });
      expect(JSON.stringify(app)).not.toContain('Response');
      expect(await store.code('hello', 1)).toEqual({ code: bundle('v1'), sha256: sha(bundle('v1')) });
      expect(await store.code('hello', 3)).toBeUndefined();
      expect(await store.code('nope', 1)).toBeUndefined();
      expect(await store.manifest()).toMatchObject([{ name: 'hello', version: 2, config: { kv: ['CACHE'], volunteers: false, require: [], vars: {} } }]);
    });

    it('names a plain deployment by its code\'s hash, and one with config or secrets by a keyed id that moves with them', async () => {
      await store.deploy('plain', bundle('x'), '', {});
      expect((await store.manifest())[0]!.sha256).toBe(sha(bundle('x')));
      await store.deploy('cfg', bundle('x'), '', { vars: { B: '2', A: '1' } });
      const withConfig = (await store.manifest()).find((a) => a.name === 'cfg')!;
      expect(withConfig.sha256).not.toBe(sha(bundle('x')));
      expect(withConfig.config.vars).toEqual({ A: '1', B: '2' });
      await store.putSecret('cfg', 'KEY', 'one');
      const withSecret = (await store.manifest()).find((a) => a.name === 'cfg')!.sha256;
      expect(withSecret).not.toBe(withConfig.sha256);
      await store.putSecret('cfg', 'KEY', 'two');
      expect((await store.manifest()).find((a) => a.name === 'cfg')!.sha256).not.toBe(withSecret);
      // Every node names the deployment alike: the key is the store's, not the process's.
      const other = await h.another();
      expect(await other.manifest()).toEqual(await store.manifest());
    });

    it('rolls back to the previous or a named version, and refuses what does not exist', async () => {
      for (const v of ['v1', 'v2', 'v3']) await store.deploy('app', bundle(v), v, {});
      expect((await store.rollback('app')).version).toBe(2);
      expect((await store.rollback('app', 1)).version).toBe(1);
      expect((await store.manifest())[0]).toMatchObject({ version: 1 });
      expect(await codeOf(store.rollback('app'))).toBe('APP_VERSION_NOT_FOUND');
      expect(await codeOf(store.rollback('app', 9))).toBe('APP_VERSION_NOT_FOUND');
      expect(await codeOf(store.rollback('nope'))).toBe('APP_NOT_FOUND');
      expect(await codeOf(store.rollback('Bad_Name'))).toBe('APP_BAD_NAME');
      // A rollback moves the pointer only: the next deploy is version 4.
      expect((await store.deploy('app', bundle('v4'), '', {})).version).toBe(4);
    });

    it('deletes an app with its versions and secrets; its numbers start again', async () => {
      await store.deploy('gone', bundle('a'), '', {});
      await store.deploy('gone', bundle('b'), '', {});
      await store.putSecret('gone', 'S', 'v');
      await store.delete('gone');
      expect(await store.list()).toEqual([]);
      expect(await store.secrets('gone')).toEqual({});
      expect(await store.code('gone', 1)).toBeUndefined();
      expect(await codeOf(store.delete('gone'))).toBe('APP_NOT_FOUND');
      expect((await store.deploy('gone', bundle('c'), '', {})).version).toBe(1);
    });

    it('refuses bad names, bundles and configs with their codes, and stores nothing', async () => {
      expect(await codeOf(store.deploy('Bad_Name', bundle('x'), '', {}))).toBe('APP_BAD_NAME');
      expect(await codeOf(store.deploy('empty', '', '', {}))).toBe('APP_BAD_BUNDLE');
      expect(await codeOf(store.deploy('big', 'x'.repeat(MAX_BUNDLE_BYTES + 1), '', {}))).toBe('APP_BAD_BUNDLE');
      expect(await codeOf(store.deploy('cfg', bundle('x'), '', { surprise: true } as never))).toBe('APP_BAD_CONFIG');
      expect(await store.list()).toEqual([]);
    });

    it('keeps secrets by name, never lists their values, and refuses clashes with bindings', async () => {
      await store.deploy('sec', bundle('x'), '', { kv: ['CACHE'], vars: { MODE: 'prod' } });
      await store.putSecret('sec', 'API_KEY', 's3cret');
      await store.putSecret('sec', 'OTHER', 'o');
      expect((await store.list())[0]!.secrets).toEqual(['API_KEY', 'OTHER']);
      expect(JSON.stringify(await store.list())).not.toContain('s3cret');
      expect(await store.secrets('sec')).toEqual({ API_KEY: 's3cret', OTHER: 'o' });
      expect(await codeOf(store.putSecret('sec', 'bad-name', 'x'))).toBe('APP_BAD_SECRET');
      expect(await codeOf(store.putSecret('sec', 'CACHE', 'x'))).toBe('APP_BAD_SECRET');
      expect(await codeOf(store.putSecret('sec', 'MODE', 'x'))).toBe('APP_BAD_SECRET');
      expect(await codeOf(store.putSecret('sec', 'BIG', 'x'.repeat(5 * 1024 + 1)))).toBe('APP_BAD_SECRET');
      expect(await codeOf(store.putSecret('nope', 'K', 'x'))).toBe('APP_NOT_FOUND');
      expect(await codeOf(store.deploy('sec', bundle('y'), '', { kv: ['API_KEY'] }))).toBe('APP_BAD_CONFIG');
      expect(await codeOf(store.deploy('sec', bundle('y'), '', { vars: { OTHER: 'plain' } }))).toBe('APP_BAD_CONFIG');
      expect(await store.deleteSecret('sec', 'OTHER')).toBe(true);
      expect(await store.deleteSecret('sec', 'OTHER')).toBe(false);
      expect(await codeOf(store.deleteSecret('nope', 'K'))).toBe('APP_NOT_FOUND');
      expect(await store.secrets('sec')).toEqual({ API_KEY: 's3cret' });
    });

    it('keeps bans: one per kind and value (a second sets the reason), listed, lifted by id', async () => {
      const a = await store.addBan('host', 'tab-1', 'spam');
      expect(a).toMatchObject({ kind: 'host', value: 'tab-1', reason: 'spam', id: expect.any(String), createdAt: expect.any(String) });
      const again = await store.addBan('host', 'tab-1', 'worse');
      expect(again).toMatchObject({ id: a.id, reason: 'worse' });
      await store.addBan('address', '10.0.0.9', '');
      await store.addBan('invite', 'invite-abc', 'leaked');
      // Listed by time; bans made in the same millisecond may come in either order.
      expect((await store.bans()).map((b) => [b.kind, b.value, b.reason]).sort()).toEqual([
        ['address', '10.0.0.9', ''],
        ['host', 'tab-1', 'worse'],
        ['invite', 'invite-abc', 'leaked'],
      ]);
      expect(await store.removeBan(a.id)).toBe(true);
      expect(await store.removeBan(a.id)).toBe(false);
      expect((await store.bans()).map((b) => b.value).sort()).toEqual(['10.0.0.9', 'invite-abc']);
      // Another node sees the same bans.
      expect((await (await h.another()).bans()).map((b) => b.value).sort()).toEqual(['10.0.0.9', 'invite-abc']);
    });

    it('keeps random keys, created on first read and the same for every instance', async () => {
      const deployment = await store.meta('deployment_key');
      const peer = await store.meta('peer_key');
      expect(deployment).toMatch(/^[0-9a-f]{64}$/);
      expect(peer).toMatch(/^[0-9a-f]{64}$/);
      expect(peer).not.toBe(deployment);
      const other = await h.another();
      expect(await other.meta('peer_key')).toBe(peer);
      expect(await other.meta('deployment_key')).toBe(deployment);
    });

    it('bumps the version on every write, not on a refused one, and tells watchers what changed', async () => {
      const seen: ControlChange[] = [];
      const stop = store.watch((c) => seen.push(c));
      const start = await store.version();
      await store.deploy('w', bundle('1'), '', {});
      await codeOf(store.deploy('w', '', '', {}));
      await store.putSecret('w', 'K', 'v');
      await store.addBan('host', 'h', '');
      expect(await store.version()).toBe(start + 3);
      // Told in order, each version once per kind; a poll may fold several writes into one report.
      await until(() => seen.some((c) => c.what === 'bans' && c.version === start + 3));
      const told = seen.filter((c) => c.what === 'bans').map((c) => c.version);
      expect(told).toEqual([...told].sort((a, b) => a - b));
      expect(new Set(told).size).toBe(told.length);
      stop();
    });

    it('deployIfChanged deploys only new code or config', async () => {
      expect(await store.deployIfChanged('d', bundle('a'), 'dev', {})).toMatchObject({ version: 1 });
      expect(await store.deployIfChanged('d', bundle('a'), 'dev', {})).toBeNull();
      expect(await store.deployIfChanged('d', bundle('a'), 'dev', { volunteers: true })).toMatchObject({ version: 2 });
      expect(await store.deployIfChanged('d', bundle('a'), 'dev', { volunteers: true })).toBeNull();
      expect(await store.deployIfChanged('d', bundle('b'), 'dev', { volunteers: true })).toMatchObject({ version: 3 });
    });

    it('gives unique versions to concurrent deploys of one app from two instances', async () => {
      const other = await h.another();
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? other : store).deploy('race', bundle(`v${i}`), `#${i}`, {})));
      expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const [app] = await store.list();
      expect(app!.versions).toHaveLength(10);
      expect(app!.activeVersion).toBe(10);
    });

    it('creates one version when three nodes start with the same --app at once', async () => {
      const nodes = [store, await h.another(), await h.another()];
      const results = await Promise.all(nodes.map((s) => s.deployIfChanged('default', bundle('dev'), 'development app x', {})));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect((await store.list())[0]!.versions).toHaveLength(1);
    });

    describe('through a ControlCache', () => {
      it('serves the manifest, bans and version synchronously, refreshed on every write', async () => {
        await store.deploy('early', bundle('e'), '', {});
        const cache = new ControlCache(store);
        try {
          await cache.ready;
          expect(cache.manifest().map((a) => a.name)).toEqual(['early']);
          const changes: Array<{ apps: boolean; bans: boolean }> = [];
          cache.onChange((c) => changes.push({ apps: c.apps, bans: c.bans }));
          await store.deploy('late', bundle('l'), '', {});
          await until(() => cache.manifest().length === 2);
          expect(cache.version).toBe(await store.version());
          await store.addBan('address', '10.1.1.1', 'abuse');
          await store.addBan('invite', 'invite-x', '');
          await until(() => cache.banMatch({ sub: 'invite-x' }) !== null);
          expect(cache.banMatch({ hostId: 'h', address: '10.1.1.1' })).toBe('abuse');
          expect(cache.banMatch({ hostId: 'h', address: '10.1.1.2', sub: 'invite-x' })).toBe('');
          expect(cache.banMatch({ hostId: 'h', address: '10.1.1.2' })).toBeNull();
          expect(changes).toContainEqual({ apps: true, bans: false });
          expect(changes).toContainEqual({ apps: false, bans: true });
        } finally {
          cache.close();
        }
      });

      it('fetches code once per version and drops it when the app is deleted and redeployed', async () => {
        await store.deploy('c', bundle('one'), '', {});
        const cache = new ControlCache(store);
        try {
          await cache.ready;
          expect((await cache.code('c', 1))?.code).toBe(bundle('one'));
          await store.delete('c');
          await until(() => cache.manifest().length === 0);
          await store.deploy('c', bundle('two'), '', {});
          await until(() => cache.manifest().length === 1);
          expect((await cache.code('c', 1))?.code).toBe(bundle('two'));
          expect(await cache.code('c', 7)).toBeUndefined();
        } finally {
          cache.close();
        }
      });

      it('waits for a version this node has not applied yet, and says when it never came', async () => {
        const cache = new ControlCache(store);
        try {
          await cache.ready;
          const waiting = cache.waitForVersion(cache.version + 1, 10_000);
          await store.addBan('host', 'x', '');
          expect(await waiting).toBe(true);
          expect(await cache.waitForVersion(cache.version + 1, 20)).toBe(false);
        } finally {
          cache.close();
        }
      });
    });
  });
}
