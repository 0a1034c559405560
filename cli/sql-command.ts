/**
 * `dcdn sql APP --binding DB "SELECT …"`, `dcdn sql migrate APP --binding DB DIR`,
 * `dcdn sql export APP --binding DB` and `dcdn sql import APP --binding DB FILE`: an operator's
 * view of an app's database, the one its handler sees as env.DB (docs/sql.md).
 *
 * Calls go to a running ingress (`POST /_dcdn/sql/APP/BINDING`, operator token), which runs them
 * on its store: the embedded store is one process's, so that is the only safe way to it while
 * the ingress runs. `--store SPEC` opens the store directly instead (a Postgres, or an embedded
 * store whose ingress is stopped).
 */
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fromWire, type SqlWireRequest, type SqlWireResult, type WireValue } from '../protocol/index.ts';
import { openSqlStore, SQL_LIMITS } from '../ingress/index.ts';
import { mintToken } from '../signaling/index.ts';
import { UsageError } from './args.ts';
import { readState } from './state.ts';

import { sqlUsage } from './sql-flags.ts';

export { sqlCommandFlags, sqlDescription, sqlUsage } from './sql-flags.ts';

type Runner = (request: SqlWireRequest) => Promise<SqlWireResult[]>;

/** Runs calls through the ingress's `/_dcdn/sql`, or on a store opened here. */
async function runner(app: string, binding: string, values: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<{ run: Runner; close(): Promise<void> }> {
  if (typeof values.store === 'string') {
    const store = await openSqlStore(values.store);
    return { run: (request) => store.run({ app, binding }, request, SQL_LIMITS), close: () => store.close() };
  }
  const state = readState(env);
  const ingress = (values.ingress as string | undefined) ?? env.DCDN_INGRESS ?? state?.ingress;
  if (!ingress) throw new UsageError('no ingress: run `dcdn up` here first, pass --ingress URL, or --store SPEC');
  const token =
    (values.token as string | undefined) ?? env.DCDN_TOKEN ?? (env.DCDN_SECRET ? mintToken(env.DCDN_SECRET, { role: 'operator', ttlSeconds: 600, sub: 'cli' }) : undefined) ?? state?.operatorToken;
  if (!token) throw new UsageError('no operator token: pass --token, or set DCDN_TOKEN or DCDN_SECRET');
  const url = `${ingress.replace(/\/+$/, '')}/_dcdn/sql/${encodeURIComponent(app)}/${encodeURIComponent(binding)}`;
  return {
    run: async (request) => {
      const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(request) });
      const json = (await res.json().catch(() => null)) as { results?: SqlWireResult[]; error?: { code: string; message: string } } | null;
      if (!res.ok || !json?.results) throw Object.assign(new Error(`${json?.error?.code ?? `HTTP ${res.status}`}: ${json?.error?.message ?? res.statusText}`), { code: json?.error?.code });
      return json.results;
    },
    close: async () => {},
  };
}

export async function sql(values: Record<string, unknown> & { _: string[] }, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [first, ...rest] = values._;
  const action = first === 'migrate' || first === 'export' || first === 'import' ? first : 'query';
  const args = action === 'query' ? values._ : rest;
  const app = args[0];
  const binding = values.binding as string | undefined;
  if (!app || !binding) throw new UsageError(`usage: ${sqlUsage}`);
  const db = await runner(app, binding, values, env);
  try {
    switch (action) {
      case 'query': {
        const text = args[1];
        if (!text) throw new UsageError('usage: dcdn sql APP --binding DB "SQL"');
        const [r] = await db.run({ mode: 'batch', statements: [{ sql: text, params: [] }] });
        print(r!, values.json === true);
        return 0;
      }
      case 'migrate':
        if (!args[1]) throw new UsageError('usage: dcdn sql migrate APP --binding DB DIR');
        return await migrate(db.run, args[1]);
      case 'export':
        return await exportRows(db.run);
      case 'import':
        if (!args[1]) throw new UsageError('usage: dcdn sql import APP --binding DB FILE');
        return await importRows(db.run, args[1]);
    }
  } finally {
    await db.close();
  }
}

function show(v: WireValue): unknown {
  const value = fromWire(v);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof ArrayBuffer) return `\\x${Buffer.from(value).toString('hex')}`;
  return value;
}

/** Rows as an aligned table (or JSON), then how many, as psql does. */
function print(r: SqlWireResult, json: boolean): void {
  const rows = r.rows.map((row) => row.map(show));
  if (json) {
    for (const row of rows) process.stdout.write(`${JSON.stringify(Object.fromEntries(r.columns.map((c, i) => [c, row[i]])))}\n`);
    return;
  }
  if (r.columns.length === 0) {
    process.stdout.write(`${r.meta.changes} row(s) changed\n`);
    return;
  }
  const cells = rows.map((row) => row.map((v) => (v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v))));
  const widths = r.columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (parts: string[]) => parts.map((p, i) => p.padEnd(widths[i]!)).join(' | ').trimEnd();
  process.stdout.write(`${line(r.columns)}\n${widths.map((w) => '-'.repeat(w)).join('-+-')}\n`);
  for (const row of cells) process.stdout.write(`${line(row)}\n`);
  process.stdout.write(`(${rows.length} row${rows.length === 1 ? '' : 's'})\n`);
}

const MIGRATIONS = 'dcdn_migrations';

/**
 * Applies DIR's `NNN_name.sql` files in numeric order, each once: a file and the row that records
 * it (name, SHA-256) commit in one transaction. A recorded file whose contents changed stops the
 * run (edit history by adding a migration, not by rewriting one).
 */
async function migrate(run: Runner, dir: string): Promise<number> {
  const files = readdirSync(dir)
    .filter((f) => /^\d+.*\.sql$/.test(f))
    .sort((a, b) => Number(/^\d+/.exec(a)![0]) - Number(/^\d+/.exec(b)![0]) || (a < b ? -1 : 1));
  await run({ mode: 'exec', statements: [{ sql: `CREATE TABLE IF NOT EXISTS ${MIGRATIONS} (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`, params: [] }] });
  const [done] = await run({ mode: 'batch', statements: [{ sql: `SELECT name, sha256 FROM ${MIGRATIONS}`, params: [] }] });
  const applied = new Map(done!.rows.map((r) => [r[0] as string, r[1] as string]));
  let count = 0;
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    const sum = createHash('sha256').update(text).digest('hex');
    const was = applied.get(file);
    if (was !== undefined) {
      if (was !== sum) throw new UsageError(`${file} was applied with SHA-256 ${was.slice(0, 12)}… and has changed since (now ${sum.slice(0, 12)}…); add a new migration instead`);
      continue;
    }
    const record = `INSERT INTO ${MIGRATIONS} (name, sha256) VALUES ('${file.replace(/'/g, "''")}', '${sum}')`;
    try {
      await run({ mode: 'exec', statements: [{ sql: `${text}\n;\n${record}`, params: [] }] });
    } catch (err) {
      process.stderr.write(`${file}: ${(err as Error).message}\n`);
      process.stdout.write(`applied ${count} migration(s); ${file} failed and was rolled back\n`);
      return 1;
    }
    process.stdout.write(`applied ${file}\n`);
    count++;
  }
  process.stdout.write(`${count} applied, ${files.length - count} already there\n`);
  return 0;
}

const EXPORT_PAGE = 5000;

/** Every row of the binding's tables as `{"table": T, "row": {...}}` lines, values as on the SQL wire. */
async function exportRows(run: Runner): Promise<number> {
  const [tables] = await run({ mode: 'batch', statements: [{ sql: "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name", params: [] }] });
  for (const [name] of tables!.rows as string[][]) {
    if (name === MIGRATIONS) continue;
    const quoted = `"${name!.replace(/"/g, '""')}"`;
    for (let offset = 0; ; offset += EXPORT_PAGE) {
      // Pages are separate transactions: export from a quiet database for a consistent copy.
      const [page] = await run({ mode: 'batch', statements: [{ sql: `SELECT * FROM ${quoted} ORDER BY ctid LIMIT ${EXPORT_PAGE} OFFSET ${offset}`, params: [] }] });
      for (const row of page!.rows) process.stdout.write(`${JSON.stringify({ table: name, row: Object.fromEntries(page!.columns.map((c, i) => [c, row[i]])) })}\n`);
      if (page!.rows.length < EXPORT_PAGE) break;
    }
  }
  return 0;
}

const IMPORT_BATCH = 200;

/** Inserts the rows of an export, a batch of rows per call (each call one transaction). */
async function importRows(run: Runner, file: string): Promise<number> {
  let pending: Array<{ table: string; row: Record<string, WireValue> }> = [];
  let count = 0;
  const flush = async () => {
    if (pending.length === 0) return;
    const statements = pending.map(({ table, row }) => {
      const cols = Object.keys(row);
      return { sql: `INSERT INTO "${table.replace(/"/g, '""')}" (${cols.map((c) => `"${c.replace(/"/g, '""')}"`).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`, params: cols.map((c) => row[c]!) };
    });
    await run({ mode: 'batch', statements });
    count += pending.length;
    pending = [];
  };
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.trim() === '') continue;
    pending.push(JSON.parse(line) as { table: string; row: Record<string, WireValue> });
    if (pending.length >= IMPORT_BATCH) await flush();
  }
  await flush();
  process.stdout.write(`imported ${count} row(s)\n`);
  return 0;
}
