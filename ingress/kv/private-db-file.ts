import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

// The ingress's copy of signaling/private-files.ts `preparePrivateDbFile` (the boundaries keep
// ingress/ and signaling/ apart, and protocol/ has no Node APIs): kv.db holds apps' data.

/**
 * Gets a SQLite database path ready to be opened owner-only: missing folders are created 0700,
 * the file is created empty 0600 when missing (SQLite gives its -wal/-shm/-journal the file's
 * mode), and an existing file and its side files lose any group/other bits.
 */
export function preparePrivateDbFile(path: string): void {
  if (path === ':memory:' || path === '' || path.startsWith('file:')) return;
  const dir = dirname(path);
  const first = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (first !== undefined) {
    let at = first;
    chmodSync(at, 0o700);
    for (const part of relative(first, dir).split(sep).filter(Boolean)) chmodSync((at = join(at, part)), 0o700);
  }
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let mode: number;
    try {
      mode = statSync(file).mode & 0o7777;
    } catch {
      continue;
    }
    if ((mode & 0o077) !== 0) chmodSync(file, mode & ~0o077);
  }
}
