import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteKvStore } from '../ingress/kv/sqlite-store.ts';
import { makePrivateDir, preparePrivateDbFile, tightenPrivateTree } from '../signaling/private-files.ts';
import { BanList } from '../signaling/bans.ts';
import { AppStore } from '../signaling/app-store.ts';
import { readState, secureStateDir, writeState } from '../cli/state.ts';

// Issue 15.13: app secrets sat in clear in ~/.dcdn/apps.db-wal, mode 0644 in a 0755 directory.
// These tests look at the real files' modes. The umask is opened wide (the test runs in a forked
// process of its own) so that nothing is owner-only by accident of the default 022.

const mode = (path: string) => statSync(path).mode & 0o777;

/** Every path under `dir` (itself included) with its mode, as `name: 0oNNN` for readable failures. */
function modes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (path: string, name: string) => {
    out[name] = mode(path).toString(8);
    if (statSync(path).isDirectory()) for (const entry of readdirSync(path)) walk(join(path, entry), `${name}/${entry}`);
  };
  walk(dir, '.');
  return out;
}

let work: string;
let oldUmask: number;
beforeEach(() => {
  oldUmask = process.umask(0);
  work = mkdtempSync(join(tmpdir(), 'dcdn-private-'));
});
afterEach(() => {
  process.umask(oldUmask);
  rmSync(work, { recursive: true, force: true });
});

describe('state under $DCDN_HOME is owner-only', () => {
  it('creates the app store, its -wal and -shm and their folder owner-only, with a secret in them', () => {
    const home = join(work, 'home', '.dcdn');
    const store = new AppStore(join(home, 'apps.db'));
    store.deploy('hello', 'export default { fetch() { return new Response("hi"); } };');
    store.putSecret('hello', 'GREETING', 'sesame');
    const bans = new BanList(join(home, 'apps.db'));
    bans.add('host', 'tab-9', 'test');
    const files = readdirSync(home);
    expect(files).toEqual(expect.arrayContaining(['apps.db', 'apps.db-wal', 'apps.db-shm']));
    expect(modes(home)).toEqual(Object.fromEntries([['.', '700'], ...files.map((f) => [`./${f}`, '600'])]));
    // The folder the store had to create above $DCDN_HOME is private too (it made it).
    expect(mode(join(work, 'home'))).toBe(0o700);
    bans.close();
    store.close();
  });

  it('creates kv.db and its -wal and -shm owner-only', async () => {
    const store = new SqliteKvStore(join(work, 'kv', 'kv.db'));
    async function* value() {
      yield new TextEncoder().encode('v');
    }
    await store.put('app:KV', 'k', value(), { maxValueBytes: 1024 });
    expect(readdirSync(join(work, 'kv'))).toEqual(expect.arrayContaining(['kv.db', 'kv.db-wal', 'kv.db-shm']));
    expect(Object.values(modes(join(work, 'kv')))).toEqual(['700', '600', '600', '600']);
    await store.close();
  });

  it('writes state.json 0600 in a 0700 folder', () => {
    const env = { DCDN_HOME: join(work, 'state') };
    writeState({ signal: 'http://127.0.0.1:1', ingress: 'http://127.0.0.1:2', operatorToken: 't', baseDomain: 'localhost', pathPrefix: '/@', pid: 1, updatedAt: '' }, env);
    expect(modes(env.DCDN_HOME)).toEqual({ '.': '700', './state.json': '600' });
    expect(readState(env)?.operatorToken).toBe('t');
  });

  it('tightens an existing store left 0644 (and its -wal) when it is opened again', () => {
    const path = join(work, 'apps.db');
    new AppStore(path).close();
    writeFileSync(`${path}-wal`, '');
    chmodSync(path, 0o644);
    chmodSync(`${path}-wal`, 0o666);
    expect(preparePrivateDbFile(path).map((t) => [t.path, t.from])).toEqual([
      [path, 0o644],
      [`${path}-wal`, 0o666],
    ]);
    const store = new AppStore(path);
    store.deploy('x', 'export default { fetch() { return new Response("x"); } };');
    store.putSecret('x', 'K', 'v');
    expect([mode(path), mode(`${path}-wal`), mode(`${path}-shm`)]).toEqual([0o600, 0o600, 0o600]);
    store.close();
  });

  it('fixes the modes of an old $DCDN_HOME on start and says so in one log line', () => {
    const home = join(work, '.dcdn');
    mkdirSync(join(home, 'logs'), { recursive: true, mode: 0o755 });
    writeFileSync(join(home, 'apps.db-wal'), 'secret in clear', { mode: 0o644 });
    writeFileSync(join(home, 'logs', 'up.log'), '', { mode: 0o640 });
    writeFileSync(join(home, 'mine'), '', { mode: 0o700 });
    // Not dcdn's: left as it is (DCDN_HOME may point at a folder with more in it).
    writeFileSync(join(home, 'notes.txt'), '', { mode: 0o644 });
    mkdirSync(join(home, 'project'), { mode: 0o755 });
    const lines: string[] = [];
    secureStateDir((level, msg, fields) => lines.push(`${level} ${msg} ${String(fields?.paths)}`), { DCDN_HOME: home });
    expect(modes(home)).toEqual({ '.': '700', './apps.db-wal': '600', './logs': '700', './logs/up.log': '600', './mine': '700', './notes.txt': '644', './project': '755' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warn made 4 path\(s\) in .* owner-only/);
    expect(lines[0]).toContain(`${join(home, 'apps.db-wal')} 644->600`);
    // A second start finds nothing to fix and says nothing.
    secureStateDir(() => lines.push('again'), { DCDN_HOME: home });
    expect(lines).toHaveLength(1);
  });

  it('leaves folders it did not create alone, and does not follow symbolic links', () => {
    const shared = join(work, 'srv');
    mkdirSync(shared, { mode: 0o755 });
    makePrivateDir(join(shared, 'dcdn', 'db'));
    expect([mode(shared), mode(join(shared, 'dcdn')), mode(join(shared, 'dcdn', 'db'))]).toEqual([0o755, 0o700, 0o700]);
    const outside = join(work, 'outside.txt');
    writeFileSync(outside, '', { mode: 0o644 });
    const home = join(work, 'home2');
    mkdirSync(home, { mode: 0o700 });
    symlinkSync(outside, join(home, 'link'));
    expect(tightenPrivateTree(home)).toEqual([]);
    expect(mode(outside)).toBe(0o644);
  });
});
