/** Limits of SQL calls (docs/sql.md). Every one is an ingress option and a `dcdn ingress` / `dcdn up` flag. */
export interface SqlLimits {
  /** A statement running longer is cancelled: SQL_TIMEOUT. */
  statementTimeoutMs: number;
  /** Most rows one call returns (all its statements together): SQL_RESULT_TOO_LARGE. */
  maxResultRows: number;
  /** Most bytes of result one call returns, as encoded on the wire: SQL_RESULT_TOO_LARGE. */
  maxResultBytes: number;
  /** Most statements in one call (a batch): SQL_TOO_MANY_STATEMENTS. The tab also counts per handler request. */
  maxStatementsPerCall: number;
  /** Largest request body (the statements and their parameters): SQL_BAD_REQUEST. */
  maxRequestBytes: number;
  /** SQL calls one host may have running at the ingress at once: SQL_TOO_MANY_QUERIES. */
  maxConcurrentPerHost: number;
}

export const SQL_LIMITS: SqlLimits = {
  statementTimeoutMs: 5000,
  maxResultRows: 100_000,
  maxResultBytes: 16 * 1024 * 1024,
  maxStatementsPerCall: 1000,
  maxRequestBytes: 4 * 1024 * 1024,
  maxConcurrentPerHost: 16,
};
