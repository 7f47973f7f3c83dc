import { drizzleRunner, isDrizzle, type DrizzleLike } from "./drizzle.js";
import { isNodePostgres, nodePostgresRunner, type NodePostgresLike } from "./node-postgres.js";
import { isPostgresJs, postgresJsRunner, type PostgresJsLike } from "./postgres-js.js";

/** Runs one parameterised statement on the caller's connection and returns its rows. */
export type Runner = (text: string, params: unknown[]) => Promise<unknown[]>;

/**
 * What can run the statement: a transaction of one of the supported drivers
 * (for pg, a `Client` or `PoolClient` on which the caller issued BEGIN). The
 * root postgres.js `sql`, a pg `Pool` and a drizzle database are refused with
 * a TypeError: each of their statements would commit on its own.
 */
export type SqlTransaction = PostgresJsLike | NodePostgresLike | DrizzleLike;

/** The adapter for the driver `tx` comes from, told apart by shape (no driver is imported). */
export function runnerFor(tx: unknown): Runner {
  // drizzle first: its transactions also have a `query` property (the relational query builder).
  if (isDrizzle(tx)) return drizzleRunner(tx);
  if (isPostgresJs(tx)) return postgresJsRunner(tx);
  if (isNodePostgres(tx)) return nodePostgresRunner(tx);
  throw new TypeError(
    "pushEventInTransaction: tx must be a postgres.js transaction (sql.begin), a pg Client or PoolClient, " +
      `or a drizzle transaction (db.transaction), got ${tx === null ? "null" : typeof tx}`,
  );
}
