/**
 * Serves handlers' SQL calls: streams a host opens on its session (`POST /sql/BINDING`, a JSON
 * body each way; protocol/sql-wire.ts). Checked here whatever the tab claims: the app must be
 * one this host may serve (volunteers only `--volunteers` apps), the binding one its active
 * version declares; the database is derived from both. Answers: 200 with the results, or a
 * RESET carrying the SQL_* code and a `D1_ERROR: …` message.
 */
import { DcdnError, errorCodeOf, streamBody, type ErrorCode, type SqlWireRequest, type SqlWireResult, type Stream } from '../../protocol/index.ts';
import { SQL_LIMITS, type SqlLimits } from './limits.ts';
import type { SqlStore } from './store.ts';

export interface SqlServiceOptions {
  store: SqlStore;
  limits?: Partial<SqlLimits>;
  /** The SQL bindings of the app's active version; undefined when there is no such app. */
  bindings(app: string): readonly string[] | undefined;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /** Called once per call when it is over: its mode, its SQL_ code or null, its duration in seconds. */
  oncall?: (mode: string, code: string | null, seconds: number) => void;
}

/** Who opened the stream, as the ingress knows it. */
export interface SqlCaller {
  host: string;
  mayUse(app: string): boolean;
}

export interface SqlStats {
  calls: number;
  statements: number;
  errors: number;
  bytesOut: number;
}

/** Bytes of the answer written to the stream at a time (its flow control paces them). */
const WRITE_CHUNK = 64 * 1024;

export class SqlService {
  readonly stats: SqlStats = { calls: 0, statements: 0, errors: 0, bytesOut: 0 };
  readonly limits: SqlLimits;
  readonly #opts: SqlServiceOptions;
  readonly #running = new Map<string, number>();

  constructor(options: SqlServiceOptions) {
    this.#opts = options;
    this.limits = { ...SQL_LIMITS, ...options.limits };
  }

  get store(): SqlStore {
    return this.#opts.store;
  }

  /** Answers one SQL stream; never throws (failures become a RESET with their code). */
  async serve(stream: Stream, caller: SqlCaller): Promise<void> {
    const started = performance.now();
    let mode = 'invalid';
    const running = this.#running.get(caller.host) ?? 0;
    if (running >= this.limits.maxConcurrentPerHost) {
      this.stats.errors++;
      this.#opts.oncall?.(mode, 'SQL_TOO_MANY_QUERIES', 0);
      stream.reset('SQL_TOO_MANY_QUERIES', `D1_ERROR: host ${caller.host} already has ${running} SQL calls running (the limit); retry later`);
      return;
    }
    this.#running.set(caller.host, running + 1);
    try {
      const { app, binding } = this.#check(stream, caller);
      const request = await this.#read(stream);
      mode = request.mode;
      this.stats.calls++;
      this.stats.statements += request.statements.length;
      const results = await this.#opts.store.run({ app, binding }, request, this.limits);
      const body = Buffer.from(JSON.stringify({ results }));
      stream.respond({ status: 200, headers: [['content-type', 'application/json'], ['content-length', String(body.byteLength)]] }, body.byteLength === 0);
      for (let at = 0; at < body.byteLength; at += WRITE_CHUNK) await stream.write(body.subarray(at, at + WRITE_CHUNK));
      stream.end();
      this.stats.bytesOut += body.byteLength;
      this.#opts.oncall?.(mode, null, (performance.now() - started) / 1000);
    } catch (err) {
      const code: ErrorCode = errorCodeOf(err) ?? 'SQL_STORE_UNAVAILABLE';
      this.stats.errors++;
      this.#opts.oncall?.(mode, code, (performance.now() - started) / 1000);
      if (code === 'SQL_STORE_UNAVAILABLE') this.#opts.log?.('warn', 'sql store failed', { host: caller.host, error: (err as Error).message });
      stream.reset(code, (err as Error).message ?? String(err));
    } finally {
      const left = (this.#running.get(caller.host) ?? 1) - 1;
      if (left <= 0) this.#running.delete(caller.host);
      else this.#running.set(caller.host, left);
    }
  }

  #check(stream: Stream, caller: SqlCaller): { app: string; binding: string } {
    const { method, url, app = '' } = stream.request;
    const parts = url.split('/'); // ['', 'sql', BINDING]
    if (method !== 'POST' || parts.length !== 3 || parts[0] !== '' || parts[1] !== 'sql') throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: SQL calls are POST /sql/BINDING');
    const binding = parts[2]!;
    if (!app || !caller.mayUse(app)) throw new DcdnError('SQL_FORBIDDEN', `D1_ERROR: host ${caller.host} may not use the databases of app ${JSON.stringify(app)}`);
    if (!this.#opts.bindings(app)?.includes(binding)) throw new DcdnError('SQL_UNKNOWN_BINDING', `D1_ERROR: app ${app} has no SQL binding ${JSON.stringify(binding.slice(0, 64))}`);
    return { app, binding };
  }

  /** The request body, at most maxRequestBytes, checked for shape. */
  async #read(stream: Stream): Promise<SqlWireRequest> {
    return this.parse(stream.requestHasBody ? streamBody(stream) : []);
  }

  /**
   * A call's body (bytes, at most maxRequestBytes) read and checked for shape: what a tab sends
   * on its stream and an operator to `/_dcdn/sql` (admin-route.ts).
   */
  async parse(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<SqlWireRequest> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > this.limits.maxRequestBytes) throw new DcdnError('SQL_BAD_REQUEST', `D1_ERROR: the statements and their parameters are larger than ${this.limits.maxRequestBytes} bytes (the limit)`);
      chunks.push(chunk);
    }
    let value: unknown;
    try {
      value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: the SQL call is not JSON');
    }
    const { mode, statements } = (value ?? {}) as { mode?: unknown; statements?: unknown };
    if (mode !== 'batch' && mode !== 'exec') throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: mode must be batch or exec');
    if (!Array.isArray(statements) || statements.length === 0) throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: no statement to run');
    if (statements.length > this.limits.maxStatementsPerCall) throw new DcdnError('SQL_TOO_MANY_STATEMENTS', `D1_ERROR: ${statements.length} statements in one call; the limit is ${this.limits.maxStatementsPerCall}`);
    for (const s of statements as unknown[]) {
      const { sql, params } = (s ?? {}) as { sql?: unknown; params?: unknown };
      if (typeof sql !== 'string' || sql.trim() === '') throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: a statement is empty or not a string');
      if (!Array.isArray(params)) throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: parameters must be a list');
      if (mode === 'exec' && params.length > 0) throw new DcdnError('SQL_BAD_REQUEST', 'D1_ERROR: exec() takes no parameters');
    }
    return { mode, statements: statements as SqlWireRequest['statements'] };
  }

  /** Runs an operator's call (`dcdn sql`) on any binding of any app, within the same limits. */
  async runAsOperator(app: string, binding: string, request: SqlWireRequest): Promise<SqlWireResult[]> {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(app) || !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(binding)) throw new DcdnError('SQL_UNKNOWN_BINDING', 'D1_ERROR: apps are DNS labels and bindings identifiers');
    this.stats.calls++;
    this.stats.statements += request.statements.length;
    return this.#opts.store.run({ app, binding }, request, this.limits);
  }
}
