import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command's flags, as `node:util` parseArgs takes them, plus help text for each. */
export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean; help: string; multiple?: boolean }>;

/** A usage error: printed with the command's help, exit code 2. */
export class UsageError extends Error {}

export function parseFlags<S extends FlagSpec>(argv: string[], spec: S): Record<keyof S, string | boolean | string[] | undefined> & { _: string[] } {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, f] of Object.entries(spec)) {
    options[name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
    if (f.default !== undefined) options[name]!.default = f.default as never;
  }
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    return { ...(parsed.values as Record<keyof S, string | boolean | undefined>), _: parsed.positionals };
  } catch (err) {
    const e = err as Error & { code?: string };
    // Node's own text for this one suggests `--` positionals, which no dcdn command wants.
    const unknown = e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'([^']+)'/.exec(e.message)?.[1] : undefined;
    throw new UsageError(unknown !== undefined ? `unknown option ${unknown}` : e.message);
  }
}

/** Renders a command's help: a usage line, a description and the flags with defaults. */
export function helpText(usage: string, description: string, spec: FlagSpec): string {
  const flags = Object.entries(spec).map(([name, f]) => [`${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ' <value>' : ''}`, f] as const);
  const width = Math.max(30, ...flags.map(([flag]) => flag.length));
  const rows = flags.map(([flag, f]) => {
    const def = f.default !== undefined && f.default !== false ? ` (default: ${String(f.default)})` : '';
    return `  ${flag.padEnd(width)} ${f.help}${def}`;
  });
  return `Usage: ${usage}\n\n${description}\n\nOptions:\n${rows.join('\n')}\n`;
}

/** Reads a whole-number flag, with a usage error naming the flag when it is not one. */
export function intFlag(value: unknown, name: string, min = 0): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number >= ${min}, got ${String(value)}`);
  return n;
}
