import { pushEventParams, PUSH_EVENT_SQL, type SqlPushEventInput } from "./input.js";
import { runnerFor, type SqlTransaction } from "./runner.js";

export type { SqlPushEventInput } from "./input.js";
export type { SqlTransaction } from "./runner.js";
export type { DrizzleLike } from "./drizzle.js";
export type { NodePostgresLike } from "./node-postgres.js";
export type { PostgresJsLike } from "./postgres-js.js";

/**
 * Pushes an event with the database function `httpqueue.push_event`, inside
 * the caller's transaction: it is delivered only if that transaction commits.
 * Errors from the database (SQLSTATE 22023 for bad input) are thrown as the
 * driver reports them, and leave the transaction for the caller to roll back.
 * `tx` must be a transaction (see `SqlTransaction`): the root postgres.js
 * `sql`, a pg `Pool` and a drizzle database are refused with a TypeError
 * before anything is sent.
 */
export async function pushEventInTransaction(
  tx: SqlTransaction,
  input: SqlPushEventInput,
): Promise<{ eventId: string }> {
  const run = runnerFor(tx);
  const rows = await run(PUSH_EVENT_SQL, pushEventParams(input));
  // The only column, read by position: postgres.js may be set to rename columns (`transform`).
  const [row] = rows;
  const eventId =
    typeof row === "object" && row !== null ? Object.values(row as Record<string, unknown>)[0] : undefined;
  if (typeof eventId !== "string") throw new Error("httpqueue.push_event returned no event id");
  return { eventId };
}
