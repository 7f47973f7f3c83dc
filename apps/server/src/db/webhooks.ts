import { and, asc, eq, gt, inArray, isNull, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { removeWakeJobs } from "./jobs.js";
import { webhookDeliveries, webhookRegistrations } from "./schema.js";

export type WebhookRow = typeof webhookRegistrations.$inferSelect;
export type NewWebhook = Pick<
  typeof webhookRegistrations.$inferInsert,
  "namespace" | "event" | "url" | "method" | "headers" | "timeout" | "active" | "description" | "signingSecret"
>;
export type WebhookChanges = Partial<
  Pick<WebhookRow, "url" | "method" | "headers" | "timeout" | "active" | "description">
>;

type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

const live = (id: string) => and(eq(webhookRegistrations.id, id), isNull(webhookRegistrations.deletedAt));

export async function insertWebhook(db: Db, values: NewWebhook): Promise<WebhookRow> {
  const [row] = await db.insert(webhookRegistrations).values(values).returning();
  if (!row) throw new Error("insert returned no row");
  return row;
}

/** A registered (not unregistered) webhook. */
export async function findWebhook(db: Db, id: string): Promise<WebhookRow | undefined> {
  const [row] = await db.select().from(webhookRegistrations).where(live(id));
  return row;
}

/**
 * Applies the changes; deactivating also cancels the webhook's pending
 * deliveries, in the same transaction. Returns the webhook and how many
 * deliveries were cancelled; undefined when there is no such webhook.
 */
export async function updateWebhook(
  db: Db,
  id: string,
  changes: WebhookChanges,
): Promise<{ webhook: WebhookRow; cancelled: number } | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(webhookRegistrations)
      .set({ ...changes, updatedAt: sql`now()` })
      .where(live(id))
      .returning();
    if (!row) return undefined;
    const cancelled = changes.active === false ? await cancelPendingDeliveries(tx, id) : 0;
    return { webhook: row, cancelled };
  });
}

/**
 * Marks the webhook unregistered and cancels its pending deliveries, in one
 * transaction. Returns how many were cancelled, or undefined when there is no
 * such webhook.
 */
export async function unregisterWebhook(db: Db, id: string): Promise<number | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(webhookRegistrations)
      .set({ active: false, deletedAt: sql`now()`, updatedAt: sql`now()` })
      .where(live(id))
      .returning({ id: webhookRegistrations.id });
    if (!row) return undefined;
    return cancelPendingDeliveries(tx, id);
  });
}

/** One page of webhooks in id (creation) order, after `afterId`. */
export async function listWebhooks(
  db: Db,
  options: { namespace?: string | undefined; afterId?: string | undefined; limit: number },
): Promise<WebhookRow[]> {
  return db
    .select()
    .from(webhookRegistrations)
    .where(
      and(
        isNull(webhookRegistrations.deletedAt),
        options.namespace ? eq(webhookRegistrations.namespace, options.namespace) : undefined,
        options.afterId ? gt(webhookRegistrations.id, options.afterId) : undefined,
      ),
    )
    .orderBy(asc(webhookRegistrations.id))
    .limit(options.limit);
}

/**
 * Cancels the webhook's pending and retrying deliveries, so that none of them
 * is sent, and removes its queued jobs (wake-ups for retries). A delivery
 * being attempted at that moment stays cancelled: its attempt is recorded,
 * but the delivery is not updated and nothing is scheduled.
 */
async function cancelPendingDeliveries(tx: Tx, webhookId: string): Promise<number> {
  const d = webhookDeliveries;
  const rows = await tx
    .update(d)
    .set({ status: "cancelled", nextAttemptAt: null, completedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(d.webhookId, webhookId), inArray(d.status, ["pending", "retrying"])))
    .returning({ id: d.id });
  await tx.execute(removeWakeJobs(sql`${webhookId}`));
  return rows.length;
}
