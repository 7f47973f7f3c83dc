import { and, asc, eq, gt, isNull, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { webhookDeliveries, webhookRegistrations } from "./schema.js";
import { deliverJobKey } from "../delivery/task-names.js";

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
 * Cancels the webhook's pending and retrying deliveries and removes their
 * queued jobs, so that none of them is sent. A job already running finds its
 * delivery cancelled when it records the attempt, and schedules no retry.
 */
async function cancelPendingDeliveries(tx: Tx, webhookId: string): Promise<number> {
  const d = webhookDeliveries;
  const rows = await tx.execute<{ cancelled: number }>(sql`
    with cancelled as (
      update ${d}
      set status = 'cancelled', next_attempt_at = null, completed_at = now(), updated_at = now()
      where ${d.webhookId} = ${webhookId} and ${d.status} in ('pending', 'retrying')
      returning ${d.id}, ${d.attemptCount}
    ), removed as (
      -- The one queued job of a pending or retrying delivery is its next attempt's.
      select graphile_worker.remove_job(${deliverJobKey(sql`cancelled.id`, sql`cancelled.attempt_count + 1`)})
      from cancelled
    )
    select count(*)::int as cancelled from removed
  `);
  return rows[0]?.cancelled ?? 0;
}
