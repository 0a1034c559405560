/**
 * Signaling nodes started on one Postgres control store (startSignal with `controlStore`, what
 * `dcdn signal --control-store postgres://…` runs): three started at once with one `--app`
 * create one version; a later start with the same app creates none; the flag's spec is checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePropagation } from '../cli/app-commands.ts';
import { controlStoreFromFlags } from '../cli/part-commands.ts';
import { startSignal, type StartedSignal } from '../node/index.ts';
import { startPostgres, type PostgresServer } from '../tools/postgres.ts';
import { TEST_APP } from './network.ts';

const secret = 'control-start-secret-0123456789';
let pg: PostgresServer;
const started: StartedSignal[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  await pg.createDatabase('cluster');
});
afterAll(async () => {
  for (const s of started) await s.server.close();
  await pg?.stop();
});

describe('signaling nodes on one Postgres control store', () => {
  it('create one version of --app when three start at once, and none when one restarts with it', async () => {
    const start = () => startSignal({ secret, port: 0, host: '127.0.0.1', app: TEST_APP, controlStore: pg.urlFor('cluster'), log: () => {} });
    started.push(...(await Promise.all([start(), start(), start()])));
    expect(started.map((s) => s.control.kind)).toEqual(['postgres', 'postgres', 'postgres']);
    expect(started[0]!.store).toBeUndefined();
    const [app] = await started[0]!.control.list();
    expect(app).toMatchObject({ name: 'default', activeVersion: 1, versions: [{ version: 1 }] });
    started.push(await start());
    expect((await started[0]!.control.list())[0]!.versions).toHaveLength(1);
    // Every node serves the same deployment id (the key is the store's).
    const ids = started.map((s) => s.server.control.cache.manifest()[0]?.sha256);
    expect(new Set(ids).size).toBe(1);
  });
});

describe('--control-store', () => {
  it('takes sqlite:PATH or postgres://…, from the flag or DCDN_CONTROL_STORE, and not with --db', () => {
    expect(controlStoreFromFlags({}, {})).toEqual({});
    expect(controlStoreFromFlags({ 'control-store': 'sqlite:/tmp/a.db' }, {})).toEqual({ controlStore: 'sqlite:/tmp/a.db' });
    expect(controlStoreFromFlags({}, { DCDN_CONTROL_STORE: 'postgresql://u:p@db/dcdn' })).toEqual({ controlStore: 'postgresql://u:p@db/dcdn' });
    expect(() => controlStoreFromFlags({ 'control-store': 'mysql://u:secretpw@db/x' }, {})).toThrow(/sqlite:PATH or postgres/);
    expect(() => controlStoreFromFlags({ 'control-store': 'mysql://u:secretpw@db/x' }, {})).not.toThrow(/secretpw/);
    expect(() => controlStoreFromFlags({ 'control-store': 'sqlite:/a', db: '/b' }, {})).toThrow(/not both/);
  });
});

describe('dcdn deploy\'s propagation line', () => {
  it('says how many signaling nodes a write reached and how fast, and what lagging means', () => {
    expect(describePropagation({ nodes: 2, reached: 2, atVersion: 7, ms: 14, complete: true })).toBe('reached 2 of 2 signaling nodes in 14 ms');
    expect(describePropagation({ nodes: 3, reached: 2, atVersion: 7, ms: 5000, complete: false })).toMatch(/^reached 2 of 3 signaling nodes in 5000 ms \(the others have not applied control version 7 yet/);
  });
});
