/** SQL end to end over the embedded store (PGlite, one database per binding): test/sql-e2e-suite.ts. */
import { sqlE2eSuite } from './sql-e2e-suite.ts';

sqlE2eSuite('embedded');
