import type { Log } from '../node/index.ts';

/** A log line: level, message and fields, printed for people (the Node API's own type). */
export type { Log };

const COLORS = { info: '', warn: '\x1b[33m', error: '\x1b[31m' } as const;

/**
 * A logger for one component that prints `HH:MM:SS.mmm component message key=value …` to
 * stderr (stdout stays for the summary a script may read). `--quiet` keeps only warnings.
 */
export function createLog(component: string, options: { quiet?: boolean; color?: boolean } = {}): Log {
  const color = options.color ?? process.stderr.isTTY;
  return (level, msg, fields) => {
    if (options.quiet && level === 'info') return;
    const time = new Date().toISOString().slice(11, 23);
    const kv = fields
      ? Object.entries(fields)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
          .join(' ')
      : '';
    const line = `${time} ${component.padEnd(9)} ${msg}${kv ? ` ${kv}` : ''}`;
    process.stderr.write(color && COLORS[level] ? `${COLORS[level]}${line}\x1b[0m\n` : `${line}\n`);
  };
}
