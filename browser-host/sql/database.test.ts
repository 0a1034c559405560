import { describe, expect, it } from 'vitest';
import type { KvAnswer, KvCall } from '../kv/namespace.ts';
import { SQL_STATEMENTS_PER_REQUEST, SqlDatabase } from './database.ts';

const encoder = new TextEncoder();

/** A transport that records each call and answers what `answer` returns for it. */
function fake(answer: (body: { mode: string; statements: Array<{ sql: string; params: unknown[] }> }) => KvAnswer) {
  const calls: KvCall[] = [];
  const db = new SqlDatabase('DB', async (call) => {
    calls.push(call);
    return answer(JSON.parse(new TextDecoder().decode(call.body as Uint8Array)));
  });
  return { db, calls };
}

const meta = { duration: 1, changes: 0, rows_read: 2, rows_written: 0, last_row_id: null, changed_db: false, size_after: null, served_by: 'test' };
const ok = (results: unknown): KvAnswer => ({ status: 200, headers: [], body: encoder.encode(JSON.stringify({ results })) });

describe('SqlDatabase (env.DB)', () => {
  it('sends a bound statement as POST /sql/BINDING with typed parameters', async () => {
    const { db, calls } = fake(() => ok([{ columns: ['a'], rows: [], meta }]));
    await db.prepare('SELECT ?').bind(1, 'x', null, true, 5n, new Uint8Array([1]), { j: 1 }).all();
    expect(calls[0]!.method).toBe('POST');
    expect(calls[0]!.path).toBe('/sql/DB');
    const body = JSON.parse(new TextDecoder().decode(calls[0]!.body as Uint8Array));
    expect(body).toEqual({ mode: 'batch', statements: [{ sql: 'SELECT ?', params: [1, 'x', null, true, { $: 'n', v: '5' }, { $: 'b', v: 'AQ==' }, { $: 'j', v: { j: 1 } }] }] });
  });

  it("shapes results as D1's all, first, raw and batch do", async () => {
    const { db } = fake((b) => ok(b.statements.map(() => ({ columns: ['id', 'name'], rows: [[1, 'a'], [{ $: 'n', v: '9007199254740993' }, 'b']], meta }))));
    expect((await db.prepare('q').all()).results).toEqual([{ id: 1, name: 'a' }, { id: 9007199254740993n, name: 'b' }]);
    expect(await db.prepare('q').first()).toEqual({ id: 1, name: 'a' });
    expect(await db.prepare('q').first('name')).toBe('a');
    await expect(db.prepare('q').first('nope')).rejects.toThrow(/^D1_COLUMN_NOTFOUND/);
    expect(await db.prepare('q').raw({ columnNames: true })).toEqual([['id', 'name'], [1, 'a'], [9007199254740993n, 'b']]);
    const batch = await db.batch([db.prepare('a'), db.prepare('b')]);
    expect(batch).toHaveLength(2);
    expect(batch[1]!.success).toBe(true);
  });

  it('rejects with a D1_ERROR message, the SQL_ code and the SQLSTATE', async () => {
    const { db } = fake(() => ({ status: 400, headers: [['dcdn-error', 'SQL_ERROR']], body: encoder.encode(JSON.stringify({ code: 'SQL_ERROR', message: 'D1_ERROR: relation "t" does not exist (SQLSTATE 42P01)' })) }));
    const err = (await db.prepare('SELECT * FROM t').all().then(() => null, (e: unknown) => e)) as Error & { code: string; sqlState: string };
    expect(err.message).toBe('D1_ERROR: relation "t" does not exist (SQLSTATE 42P01)');
    expect(err.code).toBe('SQL_ERROR');
    expect(err.sqlState).toBe('42P01');
  });

  it('refuses undefined as D1 does, and more statements per request than the limit', async () => {
    const { db, calls } = fake((b) => ok(b.statements.map(() => ({ columns: [], rows: [], meta }))));
    expect(() => db.prepare('x').bind(undefined)).toThrow(/D1_TYPE_ERROR/);
    await db.batch(Array.from({ length: SQL_STATEMENTS_PER_REQUEST }, () => db.prepare('SELECT 1')));
    await expect(db.prepare('SELECT 1').run()).rejects.toMatchObject({ code: 'SQL_TOO_MANY_STATEMENTS' });
    expect(calls).toHaveLength(1);
  });
});
