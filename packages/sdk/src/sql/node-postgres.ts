import type { Runner } from "./runner.js";

/** The part of a node-postgres (`pg`) `Client` or `PoolClient` that is used. */
export interface NodePostgresLike {
  query(text: string, values?: never[]): PromiseLike<{ rows: unknown[] }>;
}

/** node-postgres: an object with a `query` method (a drizzle transaction's `query` is an object, not a method). */
export function isNodePostgres(tx: unknown): tx is NodePostgresLike {
  return typeof tx === "object" && tx !== null && typeof (tx as { query?: unknown }).query === "function";
}

/**
 * A `pg.Pool`: `connect` and the counts of its clients (a `Client` or
 * `PoolClient` has `connect` but no counts). A `Client` cannot be told apart
 * from one inside BEGIN, so it is taken as the caller's transaction.
 */
function isPool(client: NodePostgresLike): boolean {
  const { connect, totalCount, idleCount } = client as { connect?: unknown; totalCount?: unknown; idleCount?: unknown };
  return typeof connect === "function" && typeof totalCount === "number" && typeof idleCount === "number";
}

export function nodePostgresRunner(client: NodePostgresLike): Runner {
  if (isPool(client)) {
    throw new TypeError(
      "pushEventInTransaction: pass a client from pool.connect() on which you issued BEGIN, not the Pool itself: " +
        "each query on a Pool runs on any of its connections and commits on its own",
    );
  }
  return async (text, params) => (await client.query(text, params as never[])).rows;
}
