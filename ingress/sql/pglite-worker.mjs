// One binding's embedded database: PGlite (Postgres compiled to WASM) in its own worker thread,
// because PGlite runs each query synchronously: a long query would otherwise stop the ingress's
// event loop, and WASM cannot be interrupted except by ending the thread (pglite-store.ts does
// that at the statement timeout). Plain JS so the thread needs no TypeScript loader.
// Messages in: {id, op: 'query', sql, params} | {id, op: 'exec', sql}; out: {id, result} | {id, error}.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

const asText = (v) => v;
// The same value rules as the Postgres store (ingress/sql/pg-types.ts, docs/sql.md).
const parsers = {
  20: (v) => (Number.isSafeInteger(Number(v)) ? Number(v) : BigInt(v)),
  1700: asText,
  1082: asText,
  1083: asText,
  1114: asText,
  1184: asText,
  1266: asText,
  1186: asText,
};

let db;
try {
  db = await PGlite.create(workerData.dir, { parsers });
  parentPort.postMessage({ ready: true });
} catch (err) {
  parentPort.postMessage({ ready: false, error: { message: err?.message ?? String(err) } });
}

const shape = (r) => ({ fields: r.fields.map((f) => f.name), rows: r.rows, affected: r.affectedRows ?? null });

parentPort.on('message', async (m) => {
  try {
    if (m.op === 'query') {
      const r = await db.query(m.sql, m.params, { rowMode: 'array' });
      parentPort.postMessage({ id: m.id, result: shape(r) });
    } else if (m.op === 'exec') {
      const rs = await db.exec(m.sql);
      // exec's rows are objects; keep the column order of the fields.
      parentPort.postMessage({ id: m.id, results: rs.map((r) => ({ fields: r.fields.map((f) => f.name), rows: r.rows.map((row) => r.fields.map((f) => row[f.name])), affected: r.affectedRows ?? null })) });
    } else if (m.op === 'close') {
      await db.close();
      parentPort.postMessage({ id: m.id, result: null });
    }
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: { message: err?.message ?? String(err), code: err?.code } });
  }
});
