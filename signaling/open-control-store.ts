/**
 * Opens a control store from its spec, as `dcdn signal --control-store` takes it. The Postgres
 * client is loaded only for a `postgres://` spec, so one machine on SQLite never loads it.
 */
import { DcdnError } from '../protocol/index.ts';
import type { ControlStore } from './control-store.ts';
import type { PgControlStoreOptions } from './pg-control-store.ts';
import { SqliteControlStore } from './sqlite-control-store.ts';

/**
 * `sqlite:PATH` (`sqlite::memory:` in memory) or `postgres://…` / `postgresql://…` (the schema is
 * created if absent).
 *
 * @throws {DcdnError} SIG_BAD_OPTION for another spec; APP_STORE_UNAVAILABLE when Postgres does not answer.
 * @example
 * ```ts
 * const store = await openControlStore(process.env.DCDN_CONTROL_STORE ?? 'sqlite:/var/lib/dcdn/apps.db');
 * ```
 */
export async function openControlStore(spec: string, pgOptions: PgControlStoreOptions = {}): Promise<ControlStore> {
  if (spec.startsWith('sqlite:')) return SqliteControlStore.open(spec.slice('sqlite:'.length) || ':memory:');
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const { PgControlStore } = await import('./pg-control-store.ts');
    return PgControlStore.open(spec, pgOptions);
  }
  throw new DcdnError('SIG_BAD_OPTION', `the control store must be sqlite:PATH or postgres://…, got ${JSON.stringify(redactControlStore(spec).slice(0, 80))}`);
}

/** The spec with any password in its URL replaced, for logs and messages. */
export function redactControlStore(spec: string): string {
  return spec.replace(/(:\/\/[^:@/]*):[^@/]*@/, '$1:…@');
}
