import type { Runner } from "./runner.js";

/** The part of a node-postgres (`pg`) `Client` or `PoolClient` that is used. */
export interface NodePostgresLike {
  query(text: string, values?: never[]): PromiseLike<{ rows: unknown[] }>;
}

/** node-postgres: an object with a `query` method (a drizzle transaction's `query` is an object, not a method). */
export function isNodePostgres(tx: unknown): tx is NodePostgresLike {
  return typeof tx === "object" && tx !== null && typeof (tx as { query?: unknown }).query === "function";
}

export function nodePostgresRunner(client: NodePostgresLike): Runner {
  return async (text, params) => (await client.query(text, params as never[])).rows;
}
