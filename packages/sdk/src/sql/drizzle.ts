import { isNodePostgres, nodePostgresRunner } from "./node-postgres.js";
import { isPostgresJs, postgresJsRunner } from "./postgres-js.js";
import type { Runner } from "./runner.js";

/**
 * The part of a drizzle `PgTransaction` that is used: its session, typed by
 * drizzle as `tx._.session`, and `rollback`, which a transaction (or a nested
 * one, a savepoint) has and the database object (`PgDatabase`) has not.
 */
export interface DrizzleLike {
  execute(...args: never[]): unknown;
  rollback(): unknown;
  readonly _: { readonly session: unknown };
}

type SessionHolder = { _?: { session?: unknown }; session?: unknown };

function sessionOf(tx: unknown): unknown {
  if (typeof tx !== "object" || tx === null) return undefined;
  if (typeof (tx as { execute?: unknown }).execute !== "function") return undefined;
  const { _: meta, session } = tx as SessionHolder;
  return meta?.session ?? session;
}

/**
 * drizzle: an object with `execute` and a session (`tx._.session`, also
 * `tx.session`), a transaction or not: the database object is refused by
 * `drizzleRunner`, not taken for another driver.
 */
export function isDrizzle(tx: unknown): tx is Omit<DrizzleLike, "rollback"> {
  const session = sessionOf(tx);
  return typeof session === "object" && session !== null;
}

/**
 * Runs the statement on the driver client that the transaction's session
 * holds (drizzle's postgres-js and node-postgres sessions keep it as
 * `client`): the same connection and transaction as `tx.execute`, without
 * needing drizzle's `sql` and without drizzle's DrizzleQueryError around the
 * database's error.
 */
export function drizzleRunner(tx: Omit<DrizzleLike, "rollback">): Runner {
  if (typeof (tx as { rollback?: unknown }).rollback !== "function") {
    throw new TypeError(
      "pushEventInTransaction: pass the transaction from db.transaction(async (tx) => ...), not the drizzle database: " +
        "outside db.transaction each statement commits on its own",
    );
  }
  const client = (sessionOf(tx) as { client?: unknown }).client;
  if (isPostgresJs(client)) return postgresJsRunner(client);
  if (isNodePostgres(client)) return nodePostgresRunner(client);
  throw new TypeError(
    "pushEventInTransaction: this drizzle transaction's session holds no postgres.js or node-postgres client " +
      "(drizzle-orm/postgres-js and drizzle-orm/node-postgres are supported)",
  );
}
