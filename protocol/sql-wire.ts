/**
 * The SQL wire (docs/sql.md): what a tab's `env.DB` sends the ingress and what comes back, on a
 * stream of the session (`POST /sql/BINDING`, a JSON body each way).
 *
 * JSON rather than msgpack because this file is bundled into every sandbox worker, where
 * msgpackr would weigh on each one (see kv-wire.ts); values JSON cannot carry are tagged
 * objects `{"$": TAG, "v": …}`:
 *
 * | JS value | on the wire | Postgres parameter |
 * |---|---|---|
 * | null / undefined | `null` | NULL |
 * | boolean, string, finite number | itself | text, Postgres infers the type |
 * | bigint | `{"$":"n","v":"123"}` | its decimal text |
 * | ArrayBuffer, typed array, DataView | `{"$":"b","v":BASE64}` | `bytea` |
 * | NaN, ±Infinity | `{"$":"f","v":"NaN"}` | `'NaN'`, `'Infinity'` |
 * | a plain object or array (a `json`/`jsonb` column, or a parameter) | `{"$":"j","v":…}` | its JSON text |
 * | Date (parameter only) | its ISO string | text |
 *
 * Pure: no Node or browser APIs beyond the globals every runtime has (btoa/atob).
 */

/** Headers on a SQL stream. */
export const SQL_HEADERS = {
  /** The SQL_* code of a refused call (the same header HTTP clients see). */
  error: 'dcdn-error',
} as const;

/** A value as it crosses the wire (see the table above). */
export type WireValue = null | boolean | number | string | { $: 'n' | 'b' | 'f'; v: string } | { $: 'j'; v: unknown };

/** What a call asks: statements to run in one transaction, or a script for `exec`. */
export interface SqlWireRequest {
  /** `batch`: every statement in one transaction; `exec`: one script of `;`-separated statements without parameters. */
  mode: 'batch' | 'exec';
  statements: Array<{ sql: string; params: WireValue[] }>;
}

/** D1's `meta`, as far as Postgres can fill it (docs/sql.md says which fields mean what). */
export interface SqlMeta {
  duration: number;
  changes: number;
  rows_read: number;
  rows_written: number;
  last_row_id: number | null;
  changed_db: boolean;
  size_after: number | null;
  served_by: string;
}

/** One statement's outcome. */
export interface SqlWireResult {
  columns: string[];
  rows: WireValue[][];
  meta: SqlMeta;
}

export interface SqlWireResponse {
  results: SqlWireResult[];
}

function base64Of(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function bytesOf(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A JS value as it goes on the wire. Throws a TypeError for values with no SQL meaning (functions, symbols). */
export function toWire(value: unknown): WireValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : { $: 'f', v: String(value) };
    case 'bigint':
      return { $: 'n', v: value.toString() };
    case 'object':
      if (value instanceof ArrayBuffer) return { $: 'b', v: base64Of(new Uint8Array(value)) };
      if (ArrayBuffer.isView(value)) return { $: 'b', v: base64Of(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
      if (value instanceof Date) return value.toISOString();
      return { $: 'j', v: value };
    default:
      throw new TypeError(`a ${typeof value} cannot be a SQL value`);
  }
}

/**
 * A wire value as JS: blobs become ArrayBuffers, bigints bigints, JSON its value. What is not a
 * known shape is refused (the ingress reads what hostile tabs send).
 */
export function fromWire(value: unknown): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value === 'object' && !Array.isArray(value)) {
    const { $: tag, v } = value as { $?: unknown; v?: unknown };
    if (tag === 'j') return v;
    if (typeof v === 'string') {
      if (tag === 'n' && /^-?\d{1,40}$/.test(v)) return BigInt(v);
      if (tag === 'f' && (v === 'NaN' || v === 'Infinity' || v === '-Infinity')) return Number(v);
      if (tag === 'b') {
        const bytes = bytesOf(v);
        return bytes.buffer;
      }
    }
  }
  throw new TypeError('not a SQL wire value');
}

/**
 * The statement with `?` placeholders numbered as Postgres wants them (`$1`, `$2`, …), and
 * D1's `?NNN` as `$NNN`. Question marks inside string literals (`'…'`, `E'…'`), quoted
 * identifiers, dollar-quoted bodies and comments are left alone. A statement that already uses
 * `$n` placeholders is returned unchanged, so Postgres' jsonb `?`, `?|` and `?&` operators stay
 * usable there.
 */
export function numberPlaceholders(sql: string): string {
  if (hasDollarParams(sql)) return sql;
  let out = '';
  let n = 0;
  let i = 0;
  while (i < sql.length) {
    const skip = skipQuoted(sql, i);
    if (skip > i) {
      out += sql.slice(i, skip);
      i = skip;
      continue;
    }
    const c = sql[i]!;
    if (c === '?') {
      const digits = /^\d+/.exec(sql.slice(i + 1))?.[0];
      if (digits) {
        out += `$${digits}`;
        i += 1 + digits.length;
      } else {
        out += `$${++n}`;
        i++;
      }
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** Whether `$1`-style placeholders occur outside literals and comments. */
function hasDollarParams(sql: string): boolean {
  let i = 0;
  while (i < sql.length) {
    const skip = skipQuoted(sql, i);
    if (skip > i) {
      i = skip;
      continue;
    }
    if (sql[i] === '$' && /\d/.test(sql[i + 1] ?? '') && !/[\w$]/.test(sql[i - 1] ?? '')) return true;
    i++;
  }
  return false;
}

/** If a literal, quoted identifier, dollar-quoted string or comment starts at `i`, the index after it; else `i`. */
function skipQuoted(sql: string, i: number): number {
  const c = sql[i];
  const next = sql[i + 1];
  if (c === '-' && next === '-') {
    const end = sql.indexOf('\n', i);
    return end === -1 ? sql.length : end + 1;
  }
  if (c === '/' && next === '*') {
    // Postgres' block comments nest.
    let depth = 0;
    let j = i;
    while (j < sql.length) {
      if (sql[j] === '/' && sql[j + 1] === '*') {
        depth++;
        j += 2;
      } else if (sql[j] === '*' && sql[j + 1] === '/') {
        depth--;
        j += 2;
        if (depth === 0) return j;
      } else j++;
    }
    return sql.length;
  }
  if (c === "'" || c === '"') {
    // E'…' strings take backslash escapes; standard ones only doubled quotes.
    const escapes = c === "'" && (sql[i - 1] === 'E' || sql[i - 1] === 'e') && !/[\w$]/.test(sql[i - 2] ?? '');
    let j = i + 1;
    while (j < sql.length) {
      if (escapes && sql[j] === '\\') j += 2;
      else if (sql[j] === c) {
        if (sql[j + 1] === c) j += 2;
        else return j + 1;
      } else j++;
    }
    return sql.length;
  }
  if (c === '$' && !/[\w$]/.test(sql[i - 1] ?? '')) {
    const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i))?.[0];
    if (tag) {
      const end = sql.indexOf(tag, i + tag.length);
      return end === -1 ? sql.length : end + tag.length;
    }
  }
  return i;
}
