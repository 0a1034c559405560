/**
 * The app of the benchmark's sql section (bench/sql.ts), deployed as `sql` with the binding
 * `DB`. It times its own `env.DB` calls with `performance.now()` inside the handler: the hop
 * from its sandbox worker to the host page, the stream to the ingress, the store, and back.
 *
 * - `GET /noop`: answers `ok` and touches nothing (the request the SQL calls add to).
 * - `GET /setup`: (re)creates `bench_items` with 1000 rows.
 * - `GET /run?op=point|insert|select100|batch10&n=K`: K sequential calls of that kind; answers
 *   `{"ms": [...]}`. A call that returns the wrong rows fails the request (500).
 */
interface Stmt {
  bind(...v: unknown[]): Stmt;
  first(column?: string): Promise<unknown>;
  all(): Promise<{ results: unknown[] }>;
  run(): Promise<unknown>;
}
interface Db {
  prepare(sql: string): Stmt;
  batch(s: Stmt[]): Promise<unknown[]>;
  exec(sql: string): Promise<unknown>;
}

const MAX_OPS = 500;
const round = (ms: number) => Math.round(ms * 1000) / 1000;

export default {
  async fetch(request: Request, env: { DB: Db }): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/noop') return new Response('ok');
    if (url.pathname === '/setup') {
      await env.DB.exec("DROP TABLE IF EXISTS bench_items; CREATE TABLE bench_items (id INT PRIMARY KEY, label TEXT NOT NULL); INSERT INTO bench_items SELECT g, 'item ' || g FROM generate_series(1, 1000) g; DROP TABLE IF EXISTS bench_log; CREATE TABLE bench_log (id SERIAL PRIMARY KEY, v TEXT)");
      return new Response('ok');
    }
    const op = url.searchParams.get('op');
    const n = Math.min(MAX_OPS, Number(url.searchParams.get('n') ?? 1));
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      switch (op) {
        case 'point': {
          const label = await env.DB.prepare('SELECT label FROM bench_items WHERE id = ?').bind((i % 1000) + 1).first('label');
          if (label !== `item ${(i % 1000) + 1}`) return new Response(`wrong row: ${String(label)}`, { status: 500 });
          break;
        }
        case 'insert':
          await env.DB.prepare('INSERT INTO bench_log (v) VALUES (?)').bind(`v${i}`).run();
          break;
        case 'select100': {
          const { results } = await env.DB.prepare('SELECT id, label FROM bench_items WHERE id > ? ORDER BY id LIMIT 100').bind(i % 900).all();
          if (results.length !== 100) return new Response(`${results.length} rows`, { status: 500 });
          break;
        }
        case 'batch10':
          await env.DB.batch(Array.from({ length: 10 }, (_, j) => env.DB.prepare('INSERT INTO bench_log (v) VALUES (?)').bind(`b${i}:${j}`)));
          break;
        default:
          return new Response('unknown op', { status: 400 });
      }
      ms.push(round(performance.now() - t0));
    }
    return Response.json({ ms });
  },
};
