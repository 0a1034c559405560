import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

/** Mode of every directory dcdn creates for its own state: owner only. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of every file dcdn creates for its own state (app secrets, KV data, tokens): owner only. */
export const PRIVATE_FILE_MODE = 0o600;

/** A path whose mode {@link tightenPrivateTree} or {@link preparePrivateDbFile} narrowed. */
export interface TightenedMode {
  path: string;
  /** The old permission bits, e.g. `0o644`. */
  from: number;
  to: number;
}

/**
 * Creates `dir` and any missing parents owner-only (0700). Directories that already exist are
 * left as they are: a `--db /srv/dcdn/apps.db` must not chmod `/srv`. `mkdir`'s mode is masked
 * by the umask, so each created directory is chmodded as well.
 */
export function makePrivateDir(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  let path = first;
  chmodSync(path, PRIVATE_DIR_MODE);
  for (const part of relative(first, dir).split(sep).filter(Boolean)) {
    path = join(path, part);
    chmodSync(path, PRIVATE_DIR_MODE);
  }
}

/**
 * Gets a SQLite database path ready to be opened owner-only: its folder is created 0700 when
 * missing, the file itself is created empty with mode 0600 when missing (SQLite then creates
 * nothing itself; an empty file is a valid empty database), and an existing file and its
 * `-wal`, `-shm` and `-journal` lose any group/other bits. SQLite's unix VFS gives the `-wal`,
 * `-shm` and journal files it creates later the database file's own mode, so they follow.
 * Returns what was tightened. `:memory:` and `''` (temporary databases) are left alone.
 *
 * @example
 * ```ts
 * preparePrivateDbFile(path);
 * const db = new Database(path);
 * ```
 */
export function preparePrivateDbFile(path: string): TightenedMode[] {
  if (path === ':memory:' || path === '' || path.startsWith('file:')) return [];
  makePrivateDir(dirname(path));
  // 'a' creates the file if missing (mode applies only then) and never truncates an existing one.
  closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
  const tightened: TightenedMode[] = [];
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    const fixed = tightenFile(file);
    if (fixed) tightened.push(fixed);
  }
  return tightened;
}

/**
 * Takes group and other permissions off `dir` and everything under it (directories end at most
 * 0700, files at most 0600; the owner's bits are kept), so state written by an older version or
 * under a loose umask stops being readable by other users. Symbolic links are neither followed
 * nor changed. A missing `dir` is not an error. `recursive: false` changes `dir` alone. Returns
 * what was changed, for a log line.
 */
export function tightenPrivateTree(dir: string, options: { recursive?: boolean } = {}): TightenedMode[] {
  const tightened: TightenedMode[] = [];
  const visit = (path: string): void => {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      return; // gone meanwhile, or never there
    }
    if (stat.isSymbolicLink()) return;
    const from = stat.mode & 0o7777;
    const to = from & ~0o077;
    if (to !== from) {
      chmodSync(path, to);
      tightened.push({ path, from, to });
    }
    if (stat.isDirectory() && (options.recursive ?? true)) for (const name of readdirSync(path)) visit(join(path, name));
  };
  visit(dir);
  return tightened;
}

function tightenFile(path: string): TightenedMode | null {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o7777;
  } catch {
    return null;
  }
  const to = mode & ~0o077;
  if (to === mode) return null;
  chmodSync(path, to);
  return { path, from: mode, to };
}
