import { chmodSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { makePrivateDir, tightenPrivateTree, type TightenedMode } from '../signaling/index.ts';
import type { LogFn } from './log.ts';

/**
 * What `dcdn up` leaves for the other commands on this machine, so `dcdn deploy` needs only a
 * file and a name: where signaling and the ingress are, and an operator token. Kept in
 * `$DCDN_HOME` (default `~/.dcdn`), readable by the owner only.
 */
export interface LocalState {
  signal: string;
  ingress: string;
  operatorToken: string;
  baseDomain: string;
  pathPrefix: string;
  /** The KV store of the local ingress (`sqlite:PATH` or a Redis URL). */
  kvStore?: string;
  /** The SQL store of the local ingress (`pglite:DIR` or a Postgres URL). */
  sqlStore?: string;
  pid: number;
  updatedAt: string;
}

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DCDN_HOME ?? join(homedir(), '.dcdn');
}

/** Where `dcdn up` writes its {@link LocalState}. */
export function stateFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(stateDir(env), 'state.json');
}

/** The local state, or null when there is none (no `dcdn up` ever ran, or it stopped cleanly). */
export function readState(env: NodeJS.ProcessEnv = process.env): LocalState | null {
  let text: string;
  try {
    text = readFileSync(stateFile(env), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${stateFile(env)}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as LocalState;
  } catch {
    // Half-written or edited by hand: say so instead of acting as if there were none.
    throw new Error(`${stateFile(env)} is not valid JSON; delete it (dcdn up writes it afresh)`);
  }
}

/** Removes the state file if it is still `pid`'s (a later `dcdn up` may have replaced it). */
export function clearState(pid: number, env: NodeJS.ProcessEnv = process.env): void {
  const file = stateFile(env);
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as LocalState;
    if (state.pid === pid) unlinkSync(file);
  } catch (err) {
    // Gone or replaced by hand already: nothing of ours to remove.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
}

export function writeState(state: LocalState, env: NodeJS.ProcessEnv = process.env): string {
  const dir = stateDir(env);
  makePrivateDir(dir);
  const file = join(dir, 'state.json');
  writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

/** dcdn's own files in `$DCDN_HOME` (SQLite's side files included). */
const STATE_FILES = ['apps.db', 'kv.db'].flatMap((db) => [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]).concat('state.json');
/** Folders of dcdn's own in `$DCDN_HOME`, tightened with all they hold. */
const STATE_TREES = ['logs'];

/**
 * Takes group and other permissions off `$DCDN_HOME` and dcdn's files in it (app secrets in
 * apps.db and its -wal, KV data, an operator token in state.json, logs), logging what changed:
 * state left by an older dcdn, or copied in under a loose umask, stops being readable by other
 * users of the machine. Other files are left alone (a DCDN_HOME pointed at a folder with more
 * in it must not have all of it chmodded). Run when a command starts; a missing one stays missing.
 */
export function secureStateDir(log: LogFn, env: NodeJS.ProcessEnv = process.env): void {
  const dir = stateDir(env);
  let fixed;
  try {
    fixed = [
      ...tightenPrivateTree(dir, { recursive: false }),
      ...STATE_FILES.flatMap((f) => tightenPrivateTree(join(dir, f), { recursive: false })),
      ...STATE_TREES.flatMap((t) => tightenPrivateTree(join(dir, t))),
    ] satisfies TightenedMode[];
  } catch (err) {
    log('warn', `could not make ${dir} owner-only; other users may read its secrets`, { error: (err as Error).message });
    return;
  }
  if (fixed.length === 0) return;
  const modes = fixed.slice(0, 10).map((f) => `${f.path} ${f.from.toString(8)}->${f.to.toString(8)}`);
  log('warn', `made ${fixed.length} path(s) in ${dir} owner-only (they were readable by other users)`, { paths: modes.join(', ') + (fixed.length > 10 ? ', …' : '') });
}
