/**
 * `dcdn cron trigger NAME`: runs an app's scheduled handler once now, through the same path as a
 * tick (signaling asks an ingress, which runs it on one host), and prints how it went.
 */
import type { CronRun } from '../protocol/index.ts';
import { UsageError } from './args.ts';
import { control, controlTarget, describeRun } from './app-commands.ts';
import { cronUsage } from './command-flags.ts';

export async function cron(values: Record<string, unknown> & { _: string[] }): Promise<number> {
  const [action, name] = values._;
  if (action !== 'trigger' || !name) throw new UsageError(`usage: ${cronUsage}`);
  const target = controlTarget(values);
  const { run } = await control<{ run: CronRun }>(target, 'POST', `/v1/apps/${encodeURIComponent(name)}/cron/trigger`);
  if (values.json) process.stdout.write(JSON.stringify(run, null, 2) + '\n');
  else {
    process.stdout.write(`${name}: ${describeRun(run)}\n`);
    if (!run.ok && run.error && run.error.includes('\n')) process.stdout.write(`${run.error}\n`);
  }
  return run.ok ? 0 : 1;
}
