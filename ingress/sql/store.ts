import type { SqlWireRequest, SqlWireResult } from '../../protocol/index.ts';
import type { SqlLimits } from './limits.ts';

/** Whose database: each (app, binding) pair is its own, named by the ingress, never by the tab. */
export interface SqlNamespace {
  app: string;
  binding: string;
}

/** Limits a store applies while it runs a call. */
export type SqlRunLimits = Pick<SqlLimits, 'statementTimeoutMs' | 'maxResultRows' | 'maxResultBytes'>;

/**
 * A backend of SQL bindings: PGlite in this process (`PgliteSqlStore`) or a Postgres server
 * (`PgSqlStore`). One call runs in one transaction: a batch commits whole or not at all.
 * Failures reject with a DcdnError carrying a SQL_* code.
 */
export interface SqlStore {
  readonly kind: 'pglite' | 'postgres';
  run(ns: SqlNamespace, request: SqlWireRequest, limits: SqlRunLimits): Promise<SqlWireResult[]>;
  /** Removes a binding's data (its schema, or its PGlite directory). */
  drop(ns: SqlNamespace): Promise<void>;
  close(): Promise<void>;
}
