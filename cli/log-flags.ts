/**
 * `--log-level` and `--log-format`, on every long-running command (`dcdn up`, `signal`,
 * `ingress`, `launch`). Apart from log.ts so that help text does not load pino.
 */
import { UsageError, type FlagSpec } from './args.ts';

/** The levels `--log-level` takes, most verbose first (pino's, plus `silent`). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `pretty`: one line per event for people; `json`: one JSON object per line for Loki, ELK and jq. */
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

// No parseArgs defaults: a flag left out must let DCDN_LOG_LEVEL / DCDN_LOG_FORMAT through.
export const logFlags = {
  'log-level': { type: 'string', help: `least severe log lines printed: ${LOG_LEVELS.join(', ')} (default: info; env DCDN_LOG_LEVEL)` },
  'log-format': { type: 'string', help: 'pretty (for people) or json (one object per line, for Loki/ELK) (default: pretty; env DCDN_LOG_FORMAT)' },
} satisfies FlagSpec;

/** Reads the log flags, then the environment; a bad value is a usage error naming its flag. */
export function logOptionsFromFlags(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): { level: LogLevel; format: LogFormat } {
  const level = (values['log-level'] as string | undefined) ?? env.DCDN_LOG_LEVEL ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  const format = (values['log-format'] as string | undefined) ?? env.DCDN_LOG_FORMAT ?? 'pretty';
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--log-format must be pretty or json, got ${JSON.stringify(format)}`);
  return { level: level as LogLevel, format: format as LogFormat };
}
