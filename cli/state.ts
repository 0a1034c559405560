import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

export function readState(env: NodeJS.ProcessEnv = process.env): LocalState | null {
  try {
    return JSON.parse(readFileSync(join(stateDir(env), 'state.json'), 'utf8')) as LocalState;
  } catch {
    return null;
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
