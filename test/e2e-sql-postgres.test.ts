/** SQL end to end over a real Postgres (a schema and a login role per binding): test/sql-e2e-suite.ts. */
import { sqlE2eSuite } from './sql-e2e-suite.ts';

sqlE2eSuite('postgres');
