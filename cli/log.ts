/**
 * One logger for every part a command runs: pino (fastify's own, so signaling's lines and the
 * CLI's are one stream). `--log-format json` writes one JSON object per line, fit for Loki or
 * ELK as it is (`level` as a name, `time` as ISO 8601, `component` on every line);
 * `--log-format pretty` writes the same events as a line for people, through pino-pretty.
 * Everything goes to stderr: stdout stays for the summary a script may read.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Log as LogFn } from '../node/index.ts';
import type { LogFormat, LogLevel } from './log-flags.ts';

/** A log line as the parts take it: level, message and fields (the Node API's `Log`). */
export type { LogFn };

/**
 * A log line: level, message and fields. The function shape the parts take (ingress, launcher,
 * signaling's starters); `child` adds bindings (`{ reqId }`, `{ host }`) to every line it logs,
 * and `pino` is the logger underneath, for what takes a pino logger (fastify).
 */
export interface Log extends LogFn {
  child(bindings: Record<string, unknown>): Log;
  readonly pino: Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Colours in pretty output; default: when stderr is a terminal. */
  color?: boolean;
  /** Where lines go; default stderr. Tests pass a stream. */
  destination?: DestinationStream;
}

/** The root logger of a command, from `--log-level` and `--log-format`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const base = {
    level,
    // Loki and ELK read names and ISO times; pid and hostname are the shipper's to add.
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if ((options.format ?? 'pretty') === 'json') return pino(base, options.destination ?? pino.destination({ fd: 2, sync: true }));
  const stream = pretty({
    // Synchronous: a line logged just before process.exit() is not lost.
    sync: true,
    destination: options.destination ?? 2,
    colorize: options.color ?? process.stderr.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    // `component message key=value …` on one line, as people (and greps) read it best.
    hideObject: true,
    messageFormat: (record, messageKey) => prettyLine(record, messageKey),
  });
  return pino(base, stream);
}

/** The {@link Log} function over a pino logger. */
export function logOf(logger: Logger): Log {
  const log = ((level, msg, fields) => {
    if (fields === undefined) logger[level](msg);
    else logger[level](withoutUndefined(fields), msg);
  }) as Log;
  Object.defineProperty(log, 'pino', { value: logger });
  log.child = (bindings) => logOf(logger.child(bindings));
  return log;
}

/**
 * A logger for one component (`signal`, `ingress`, `hosts`, …): a child of `root` (or of a
 * fresh default logger) whose every line carries `component`.
 */
export function createLog(component: string, root: Logger = createLogger()): Log {
  return logOf(root.child({ component }));
}

/** Pino's own keys: not fields of the event. */
const RECORD_KEYS = new Set(['level', 'time', 'msg', 'component', 'pid', 'hostname']);

/** A record as `component message key=value …` (strings without spaces bare, others as JSON). */
function prettyLine(record: Record<string, unknown>, messageKey: string): string {
  const fields = Object.entries(record)
    .filter(([k, v]) => !RECORD_KEYS.has(k) && k !== messageKey && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' && v !== '' && !/\s/.test(v) ? v : JSON.stringify(v instanceof Error ? v.message : v)}`)
    .join(' ');
  const component = typeof record.component === 'string' ? `${record.component.padEnd(8)} ` : '';
  return `${component}${String(record[messageKey] ?? '')}${fields ? ` ${fields}` : ''}`;
}

/** Pino prints `undefined` fields as nothing in JSON but as `undefined` in pretty; drop them. */
function withoutUndefined(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out;
}
