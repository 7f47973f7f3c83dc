import type { Runner } from "./runner.js";

/** The part of a postgres.js `Sql` or `TransactionSql` (from `sql.begin` or `tx.savepoint`) that is used. */
export interface PostgresJsLike {
  (...args: never[]): unknown;
  unsafe(query: string, parameters?: never[]): PromiseLike<readonly unknown[]>;
}

/** postgres.js: a function (the tagged template) that carries `unsafe`. */
export function isPostgresJs(tx: unknown): tx is PostgresJsLike {
  return typeof tx === "function" && typeof (tx as { unsafe?: unknown }).unsafe === "function";
}

export function postgresJsRunner(sql: PostgresJsLike): Runner {
  // The parameters are strings, numbers and null, which every driver binds.
  return async (text, params) => [...(await sql.unsafe(text, params as never[]))];
}
