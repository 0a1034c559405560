/**
 * Runs one call's statements on a connection already inside a transaction, for either store:
 * placeholders numbered, parameters decoded, SELECTs read through a cursor in pages so a result
 * over the row or byte limit is refused while it is read (never buffered whole), D1's `meta`
 * filled in. Postgres errors become SQL_* codes here (sqlError).
 */
import { DcdnError, fromWire, numberPlaceholders, toWire, type SqlWireRequest, type SqlWireResult, type WireValue } from '../../protocol/index.ts';
import type { SqlRunLimits } from './store.ts';

/** One statement's raw outcome from a backend: column names, rows as arrays, rows affected. */
export interface RawResult {
  fields: string[];
  rows: unknown[][];
  affected: number | null;
}

/** What a store hands the executor: a connection in a transaction. */
export interface SqlConnection {
  query(sql: string, params: unknown[]): Promise<RawResult>;
  /** A script of several statements, without parameters (the simple query protocol). */
  exec(script: string): Promise<RawResult[]>;
}

/** Rows fetched from a cursor at a time: the most held before the limits are checked again. */
const PAGE_ROWS = 500;

/** Runs `request` on `conn`; the caller begins and commits (or rolls back) the transaction. */
export async function execute(conn: SqlConnection, request: SqlWireRequest, limits: SqlRunLimits, servedBy: string): Promise<SqlWireResult[]> {
  const budget = { rows: 0, bytes: 0 };
  if (request.mode === 'exec') {
    const started = performance.now();
    const raws = await conn.exec(request.statements.map((s) => s.sql).join(';\n'));
    const duration = performance.now() - started;
    return raws.map((raw) => shape(raw, '', encodeRows(raw.rows, budget, limits), duration / Math.max(1, raws.length), servedBy));
  }
  const results: SqlWireResult[] = [];
  for (const [index, statement] of request.statements.entries()) {
    const sql = numberPlaceholders(statement.sql);
    const params = statement.params.map(toParam);
    const started = performance.now();
    let raw: RawResult;
    let rows: WireValue[][];
    if (readsOnly(sql)) {
      // A cursor, so the result arrives in pages and is refused at the limit, not after it. One
      // name per statement of the call; the transaction's end closes them (no CLOSE round trip).
      const cursor = `dcdn_result_${index}`;
      await conn.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${sql}`, params);
      rows = [];
      let fields: string[] = [];
      for (;;) {
        const page = await conn.query(`FETCH ${PAGE_ROWS} FROM ${cursor}`, []);
        fields = page.fields;
        for (const row of encodeRows(page.rows, budget, limits)) rows.push(row);
        if (page.rows.length < PAGE_ROWS) break;
      }
      raw = { fields, rows: [], affected: null };
    } else {
      raw = await conn.query(sql, params);
      rows = encodeRows(raw.rows, budget, limits);
    }
    results.push(shape(raw, sql, rows, performance.now() - started, servedBy));
  }
  return results;
}

/** Statements a cursor can hold: SELECT, VALUES, TABLE (WITH may modify data, which a cursor refuses). */
function readsOnly(sql: string): boolean {
  return /^(select|values|table)\b/i.test(leadingKeywordText(sql));
}

function leadingKeywordText(sql: string): string {
  return sql.replace(/^(\s+|--[^\n]*\n?|\/\*[\s\S]*?\*\/|\()+/, '');
}

const WRITES = /^(insert|update|delete|merge|copy)\b/i;
const DDL = /^(create|alter|drop|truncate|comment|grant|revoke)\b/i;

function shape(raw: RawResult, sql: string, rows: WireValue[][], duration: number, servedBy: string): SqlWireResult {
  const verb = leadingKeywordText(sql);
  const changes = WRITES.test(verb) ? (raw.affected ?? 0) : 0;
  let lastRowId: number | null = null;
  // Postgres has no rowid: an INSERT … RETURNING id gives D1's last_row_id.
  const idAt = raw.fields.indexOf('id');
  if (/^insert\b/i.test(verb) && idAt !== -1 && rows.length > 0) {
    const id = rows[rows.length - 1]![idAt];
    if (typeof id === 'number') lastRowId = id;
  }
  return {
    columns: raw.fields,
    rows,
    meta: {
      duration: Math.round(duration * 1000) / 1000,
      changes,
      rows_read: WRITES.test(verb) ? 0 : rows.length,
      rows_written: changes,
      last_row_id: lastRowId,
      changed_db: changes > 0 || DDL.test(verb),
      size_after: null,
      served_by: servedBy,
    },
  };
}

/** Rows as wire values, counted against the call's row and byte limits. */
function encodeRows(rows: unknown[][], budget: { rows: number; bytes: number }, limits: SqlRunLimits): WireValue[][] {
  const out = rows.map((row) => row.map(resultValue));
  budget.rows += out.length;
  if (budget.rows > limits.maxResultRows) throw new DcdnError('SQL_RESULT_TOO_LARGE', `D1_ERROR: the result has more than ${limits.maxResultRows} rows (the limit); page it with LIMIT and OFFSET or a keyset`);
  if (out.length > 0) budget.bytes += JSON.stringify(out).length;
  if (budget.bytes > limits.maxResultBytes) throw new DcdnError('SQL_RESULT_TOO_LARGE', `D1_ERROR: the result is larger than ${limits.maxResultBytes} bytes (the limit); select fewer or smaller rows`);
  return out;
}

/** A value the backend returned, as it goes on the wire (types.ts decides what JS value each type becomes). */
function resultValue(value: unknown): WireValue {
  if (value instanceof Date) return value.toISOString();
  return toWire(value);
}

/** A wire parameter as the Postgres clients take it: bigint as text, JSON as its text, blobs as bytes. */
function toParam(value: unknown): unknown {
  let v: unknown;
  try {
    v = fromWire(value);
  } catch {
    throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: a parameter is not a SQL value (numbers, strings, null, booleans, bigint, ArrayBuffer, JSON)');
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return v;
}

/**
 * A failure of Postgres (or PGlite) as a SQL_* error whose message a D1 user recognises:
 * `D1_ERROR: <Postgres' message> (SQLSTATE 42P01)`.
 */
export function sqlError(err: unknown): DcdnError {
  if (err instanceof DcdnError) return err;
  const e = err as { code?: unknown; message?: unknown; errno?: unknown; syscall?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  // A socket error's code (EPIPE) also has five capitals: only the server's errors carry a SQLSTATE.
  const fromServer = e?.errno === undefined && e?.syscall === undefined;
  const state = fromServer && typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  if (state === undefined || /^(08|53|57P|58)/.test(state)) return new DcdnError('SQL_STORE_UNAVAILABLE', `D1_ERROR: the database is unavailable: ${message}${state ? ` (SQLSTATE ${state})` : ''}`);
  if (state === '57014') return new DcdnError('SQL_TIMEOUT', `D1_ERROR: ${message} (SQLSTATE ${state})`);
  if (state === '42501') return new DcdnError('SQL_PERMISSION_DENIED', `D1_ERROR: ${message} (SQLSTATE ${state})`);
  return new DcdnError('SQL_ERROR', `D1_ERROR: ${message} (SQLSTATE ${state})`);
}
