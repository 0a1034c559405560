/**
 * SQL end to end (test/sql-e2e-suite.ts), one network per store, in turn: the embedded store
 * (PGlite, one database per binding), then a real Postgres (a schema and a login role per
 * binding). In turn rather than in two files: each store's network with its Chromium, on a
 * 2-core machine, made the other's tab miss heartbeats.
 */
import { sqlE2eSuite } from './sql-e2e-suite.ts';

sqlE2eSuite('embedded');
sqlE2eSuite('postgres');
