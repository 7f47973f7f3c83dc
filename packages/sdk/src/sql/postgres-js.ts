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

/**
 * The root `sql` of `postgres(...)`, the only one with `begin`: the `tx` of
 * `sql.begin`, the `sp` of `tx.savepoint` and a `sql.reserve()` connection
 * are made without it (postgres.js's `Sql(handler)`, which `postgres()`
 * extends with `begin`, `reserve`, `listen`, `end`...).
 */
function isRootSql(sql: PostgresJsLike): boolean {
  return typeof (sql as { begin?: unknown }).begin === "function";
}

export function postgresJsRunner(sql: PostgresJsLike): Runner {
  if (isRootSql(sql)) {
    throw new TypeError(
      "pushEventInTransaction: pass the transaction from sql.begin(...) (or a savepoint of it), not sql itself: " +
        "each statement on sql runs on any pooled connection and commits on its own",
    );
  }
  // The parameters are strings, numbers and null, which every driver binds.
  return async (text, params) => [...(await sql.unsafe(text, params as never[]))];
}
