import { DcdnError } from './errors.ts';

/** Capabilities a host reports and a deploy may require (`dcdn deploy --require webgpu`). */
export const CAPABILITIES = ['webgpu'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** Secret, variable and binding names, as in Workers: identifiers. */
export const BINDING_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Most KV bindings one app declares. */
export const MAX_KV_BINDINGS = 32;
/** Most SQL bindings one app declares. */
export const MAX_SQL_BINDINGS = 8;
/** Most plain variables one version carries, and the longest value (UTF-8 bytes). */
export const MAX_VARS = 32;
export const MAX_VAR_BYTES = 1024;
/** Most cron triggers one version carries (`dcdn deploy --cron`, repeatable), and the longest expression. */
export const MAX_CRONS = 10;
export const MAX_CRON_LENGTH = 100;

/**
 * How one version of an app is deployed, beside its code: part of the version (a rollback
 * restores it) and of the deployment hash hosts reload on.
 */
export interface AppConfig {
  /** KV bindings: `env.NAME` is a KV namespace of this app's own (`dcdn deploy --kv NAME`). */
  kv: string[];
  /** SQL bindings: `env.NAME` is a database of this app's own (`dcdn deploy --sql NAME`, docs/sql.md); absent when none. */
  sql?: string[];
  /** May run on volunteer hosts (`--volunteers`); they never get its secrets. */
  volunteers: boolean;
  /** Only hosts with all of these serve it (`--require webgpu`). */
  require: Capability[];
  /**
   * Plain variables, `env.NAME` (`dcdn deploy --var NAME=VALUE`): not secret, so every host
   * that runs the app gets them, volunteers too; secrets are for what must not leak.
   */
  vars: Record<string, string>;
  /**
   * Cron triggers (`dcdn deploy --cron "0 * * * *"`), in UTC: signaling calls the handler's
   * `scheduled()` once per tick for the whole network (docs/apps.md). Present only when not
   * empty, so a config without one reads (and hashes) as before and older peers accept it. The
   * expressions' syntax is checked by signaling with its cron parser; here only their shape.
   */
  crons?: string[];
}

export const DEFAULT_APP_CONFIG: AppConfig = { kv: [], volunteers: false, require: [], vars: {} };

/**
 * Checks a config from the wire (deploy request, database) and returns it normalised; missing
 * fields take their defaults.
 *
 * @throws {DcdnError} APP_BAD_CONFIG naming the first problem.
 */
export function parseAppConfig(value: unknown): AppConfig {
  if (value === undefined || value === null) return { ...DEFAULT_APP_CONFIG };
  if (typeof value !== 'object' || Array.isArray(value)) throw bad('the config must be an object');
  const { kv = [], sql = [], volunteers = false, require = [], vars = {}, crons = [], ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw bad(`unknown config field ${JSON.stringify(extra[0]!.slice(0, 40))}`);
  if (!Array.isArray(kv) || kv.length > MAX_KV_BINDINGS) throw bad(`kv must be a list of at most ${MAX_KV_BINDINGS} binding names`);
  for (const name of kv) if (typeof name !== 'string' || !BINDING_NAME.test(name)) throw bad(`KV binding names are identifiers: ${JSON.stringify(preview(name).slice(0, 70))}`);
  if (new Set(kv).size !== kv.length) throw bad('a KV binding is named twice');
  if (!Array.isArray(sql) || sql.length > MAX_SQL_BINDINGS) throw bad(`sql must be a list of at most ${MAX_SQL_BINDINGS} binding names`);
  for (const name of sql) if (typeof name !== 'string' || !BINDING_NAME.test(name)) throw bad(`SQL binding names are identifiers: ${JSON.stringify(preview(name).slice(0, 70))}`);
  if (new Set(sql).size !== sql.length) throw bad('a SQL binding is named twice');
  for (const name of sql as string[]) if ((kv as string[]).includes(name)) throw bad(`${name} is both a KV and a SQL binding`);
  if (typeof volunteers !== 'boolean') throw bad('volunteers must be true or false');
  if (!Array.isArray(require)) throw bad('require must be a list');
  for (const cap of require) if (!CAPABILITIES.includes(cap as Capability)) throw bad(`unknown capability ${JSON.stringify(preview(cap).slice(0, 40))}; known: ${CAPABILITIES.join(', ')}`);
  if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) throw bad('vars must be an object of NAME: "value"');
  const entries = Object.entries(vars as Record<string, unknown>);
  if (entries.length > MAX_VARS) throw bad(`at most ${MAX_VARS} vars`);
  const encoder = new TextEncoder();
  for (const [name, v] of entries) {
    if (!BINDING_NAME.test(name)) throw bad(`var names are identifiers: ${JSON.stringify(name.slice(0, 70))}`);
    if (typeof v !== 'string' || encoder.encode(v).byteLength > MAX_VAR_BYTES) throw bad(`var ${name} must be a string of at most ${MAX_VAR_BYTES} bytes`);
    if ((kv as string[]).includes(name)) throw bad(`${name} is both a var and a KV binding`);
    if ((sql as string[]).includes(name)) throw bad(`${name} is both a var and a SQL binding`);
  }
  if (!Array.isArray(crons) || crons.length > MAX_CRONS) throw bad(`crons must be a list of at most ${MAX_CRONS} cron expressions`);
  for (const c of crons) if (typeof c !== 'string' || c.trim() === '' || c.length > MAX_CRON_LENGTH) throw bad(`a cron expression is a string of 1 to ${MAX_CRON_LENGTH} characters: ${JSON.stringify(preview(c).slice(0, 70))}`);
  // Order is kept (the first is what `dcdn cron trigger` passes as controller.cron); a repeat is dropped.
  const cronList = [...new Set((crons as string[]).map((c) => c.trim().replace(/\s+/g, ' ')))];
  return {
    kv: [...(kv as string[])].sort(),
    // Only when there are any: configs (and deployment hashes) from before SQL stay as they were.
    ...((sql as string[]).length > 0 ? { sql: [...(sql as string[])].sort() } : {}),
    volunteers,
    require: [...new Set(require as Capability[])].sort(),
    vars: Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as Record<string, string>,
    ...(cronList.length > 0 ? { crons: cronList } : {}),
  };
}

function bad(message: string): DcdnError {
  return new DcdnError('APP_BAD_CONFIG', message);
}

/**
 * A value for an error message. Not `String(v)`: an object from JSON with its own `toString`
 * key (`{"toString": 1}`), or one without a prototype, makes that throw a TypeError instead of
 * the APP_BAD_CONFIG the caller promises (found by protocol/signaling-messages.fuzz.test.ts).
 */
function preview(v: unknown): string {
  if (typeof v === 'object' && v !== null) return Array.isArray(v) ? 'a list' : 'an object';
  return String(v);
}
