import { chmodSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'state.json');
  writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}
