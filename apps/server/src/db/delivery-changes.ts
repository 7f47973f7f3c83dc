import { eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { deliveryWatchers, webhookRegistrations, type DeliveryStatusValue } from "./schema.js";

// Deliveries' changes as they are committed, by any server: while a server
// has watchers it keeps a row in delivery_watchers, and the deliveries
// table's triggers (httpqueue_delivery_changes, in the migrations) send every
// creation, change of status and attempt on CHANGES_CHANNEL.

export const CHANGES_CHANNEL = "httpqueue_deliveries";

/** One delivery's change, as the trigger describes it. */
export interface DeliveryChange {
  deliveryId: string;
  webhookId: string;
  eventId: string;
  status: DeliveryStatusValue;
  attemptCount: number;
  /** The change is an attempt's outcome (attempt number `attemptCount`). */
  attempted: boolean;
  nextAttemptAt: Date | undefined;
  /** Why it ended without an attempt, cut to 200 characters. */
  error: string | undefined;
  /** The start of the transaction that made the change. */
  changedAt: Date;
}

const STATUSES = new Set<string>(["pending", "retrying", "succeeded", "failed", "expired", "cancelled"]);

/** The changes of one notification; those that are not as the trigger writes them are dropped. */
export function parseChanges(payload: string): DeliveryChange[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return [];
  }
  const { t, r } = (parsed ?? {}) as { t?: unknown; r?: unknown };
  if (typeof t !== "number" || !Array.isArray(r)) return [];
  const changedAt = new Date(t);
  const changes: DeliveryChange[] = [];
  for (const row of r as unknown[]) {
    if (!Array.isArray(row)) continue;
    const [id, webhookId, eventId, status, attemptCount, attempted, next, error] = row as unknown[];
    if (typeof id !== "string" || typeof webhookId !== "string" || typeof eventId !== "string") continue;
    if (typeof status !== "string" || !STATUSES.has(status) || typeof attemptCount !== "number") continue;
    changes.push({
      deliveryId: id,
      webhookId,
      eventId,
      status: status as DeliveryStatusValue,
      attemptCount,
      attempted: attempted === true,
      nextAttemptAt: typeof next === "number" ? new Date(next) : undefined,
      error: typeof error === "string" ? error : undefined,
      changedAt,
    });
  }
  return changes;
}

/** Says that this server has watchers until `ttlMs` from now (renewed while it does). */
export async function announceWatchers(db: Db, server: string, ttlMs: number): Promise<void> {
  const expiresAt = sql`now() + make_interval(secs => ${ttlMs / 1000})`;
  await db
    .insert(deliveryWatchers)
    .values({ server, expiresAt })
    .onConflictDoUpdate({ target: deliveryWatchers.server, set: { expiresAt } });
  // Rows of servers that died with watchers: they would only cost NOTIFYs.
  await db.delete(deliveryWatchers).where(lt(deliveryWatchers.expiresAt, sql`now() - interval '1 hour'`));
}

/** This server has no watcher left. */
export async function withdrawWatchers(db: Db, server: string): Promise<void> {
  await db.delete(deliveryWatchers).where(eq(deliveryWatchers.server, server));
}

/** The namespace and event of each webhook (unregistered ones too): they never change. */
export async function webhookNames(db: Db, ids: string[]): Promise<Map<string, { namespace: string; event: string }>> {
  if (ids.length === 0) return new Map();
  const w = webhookRegistrations;
  const rows = await db.select({ id: w.id, namespace: w.namespace, event: w.event }).from(w).where(inArray(w.id, ids));
  return new Map(rows.map((row) => [row.id, { namespace: row.namespace, event: row.event }]));
}
