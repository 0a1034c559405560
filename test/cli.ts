/** Runs the real `dcdn` CLI as a child process, the way an operator's shell would. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const BIN = fileURLToPath(new URL('../cli/bin.mjs', import.meta.url));

export interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** `dcdn ...args` with `env`; never throws for a non-zero exit (the result carries the code). */
export async function runDcdn(env: NodeJS.ProcessEnv, args: string[], options: { timeoutMs?: number } = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env, timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
