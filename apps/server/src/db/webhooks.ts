import { and, asc, eq, gt, inArray, isNull, sql } from "drizzle-orm";
import type { Db, Tx } from "./client.js";
import { addJobs, deliverJobSpec, removeWakeJobs } from "./jobs.js";
import { webhookDeliveries, webhookRegistrations, type SignatureSchemeValue } from "./schema.js";
import { schemeChange } from "./signing-secrets.js";

export type WebhookRow = typeof webhookRegistrations.$inferSelect;

/** Why a cancelled delivery ended: its webhook went. */
export const CANCELLED_MESSAGE = "the webhook was deactivated or unregistered";
/** What a webhook's owner sets: its endpoint and its delivery policy. */
type Settings =
  | "url"
  | "method"
  | "headers"
  | "timeout"
  | "active"
  | "description"
  | "retrySchedule"
  | "maxAttempts"
  | "rateLimitPerSecond"
  | "maxInFlight"
  | "ordering"
  | "filter";
/** The filter is given as JSON text (null: none), stored as jsonb as written: numbers keep their digits. */
type FilterText = { filter?: string | null };
export type NewWebhook = Pick<
  typeof webhookRegistrations.$inferInsert,
  Exclude<Settings, "filter"> | "namespace" | "event" | "signingSecret" | "signatureScheme"
> &
  FilterText;
/** A change of signature scheme: a new secret of it (sealed), rotated in with an overlap (see db/signing-secrets.ts). */
type SchemeChange = { scheme?: { scheme: SignatureSchemeValue; sealed: string; overlapSeconds: number } };
export type WebhookChanges = Partial<Pick<WebhookRow, Exclude<Settings, "filter">>> & FilterText & SchemeChange;

const withoutFilter = ({ filter: _filter, scheme: _scheme, ...rest }: WebhookChanges) => rest;

/** The filter's column value: its text cast by the database (drizzle would re-serialise an object). */
const filterValue = ({ filter }: FilterText) =>
  filter === undefined ? {} : { filter: filter === null ? null : sql<Record<string, unknown>>`${filter}::jsonb` };

const live = (id: string) => and(eq(webhookRegistrations.id, id), isNull(webhookRegistrations.deletedAt));

export async function insertWebhook(db: Db, values: NewWebhook): Promise<WebhookRow> {
  const { filter, ...rest } = values;
  const [row] = await db
    .insert(webhookRegistrations)
    .values({ ...rest, ...filterValue({ filter }) })
    .returning();
  if (!row) throw new Error("insert returned no row");
  return row;
}

/** A registered (not unregistered) webhook. */
export async function findWebhook(db: Db, id: string): Promise<WebhookRow | undefined> {
  const [row] = await db.select().from(webhookRegistrations).where(live(id));
  return row;
}

const w = webhookRegistrations;

/** The webhook's deliveries that have not ended. */
const openDeliveriesOf = (webhookId: string) =>
  and(eq(webhookDeliveries.webhookId, webhookId), inArray(webhookDeliveries.status, ["pending", "retrying"]));

/** Set on (re)activation: an inactive webhook comes back clean. */
const CLEAN_WHEN_REACTIVATED = {
  disabledReason: sql`case when ${w.active} then ${w.disabledReason} end`,
  disabledAt: sql`case when ${w.active} then ${w.disabledAt} end`,
  failingSince: sql`case when ${w.active} then ${w.failingSince} end`,
  failureCount: sql`case when ${w.active} then ${w.failureCount} else 0 end`,
  failingNoticedAt: sql`case when ${w.active} then ${w.failingNoticedAt} end`,
  recoveredAt: sql`case when ${w.active} then ${w.recoveredAt} end`,
  pausedUntil: sql`case when ${w.active} then ${w.pausedUntil} end`,
  pace: sql`case when ${w.active} then ${w.pace} end`,
  nextSendAt: sql`case when ${w.active} then ${w.nextSendAt} end`,
  recentSends: sql`case when ${w.active} then ${w.recentSends} end`,
};

/**
 * Applies the changes, in one transaction with what follows from them:
 * deactivating cancels the webhook's pending deliveries (and records it as
 * done by hand); activating an inactive webhook starts it clean (no disabled
 * reason, failure streak, pause or pace); a new number of attempts applies to
 * its deliveries not yet ended (`defaultMaxAttempts` when it goes back to the
 * server's default); a new signature scheme rotates a new secret in, unless
 * the webhook has that scheme already. Returns the webhook and how many
 * deliveries were cancelled; undefined when there is no such webhook.
 */
export async function updateWebhook(
  db: Db,
  id: string,
  changes: WebhookChanges,
  defaultMaxAttempts: number,
): Promise<{ webhook: WebhookRow; cancelled: number } | undefined> {
  return db.transaction(async (tx) => {
    if (changes.active === false || changes.maxAttempts !== undefined) await lockOpenDeliveries(tx, id);
    const [row] = await tx
      .update(w)
      .set({
        ...withoutFilter(changes),
        ...filterValue(changes),
        ...(changes.scheme &&
          schemeChange(changes.scheme.scheme, changes.scheme.sealed, changes.scheme.overlapSeconds)),
        ...(changes.active === true ? CLEAN_WHEN_REACTIVATED : {}),
        ...(changes.active === false
          ? {
              disabledReason: sql`case when ${w.active} then 'manual' else ${w.disabledReason} end`,
              disabledAt: sql`case when ${w.active} then now() else ${w.disabledAt} end`,
            }
          : {}),
        updatedAt: sql`now()`,
      })
      .where(live(id))
      .returning();
    if (!row) return undefined;
    if (changes.maxAttempts !== undefined) {
      const d = webhookDeliveries;
      const attempts = changes.maxAttempts ?? defaultMaxAttempts;
      const spent = await tx
        .update(d)
        .set({
          maxAttempts: attempts,
          // Those with no attempt left are due now, to end as FAILED without another.
          nextAttemptAt: sql`case when ${d.attemptCount} >= ${attempts} then least(${d.nextAttemptAt}, now()) else ${d.nextAttemptAt} end`,
          updatedAt: sql`now()`,
        })
        .where(openDeliveriesOf(id))
        .returning({ spent: sql<boolean>`${d.attemptCount} >= ${attempts}` });
      if (spent.some((r) => r.spent)) {
        await tx.execute(addJobs(sql`select ${deliverJobSpec(sql`${id}::uuid`)} as spec`));
      }
    }
    const cancelled = changes.active === false ? await cancelPendingDeliveries(tx, id) : 0;
    return { webhook: row, cancelled };
  });
}

/**
 * Marks the webhook unregistered, wipes its signing secrets and cancels its pending deliveries, in one
 * transaction. Returns how many were cancelled, or undefined when there is no
 * such webhook.
 */
export async function unregisterWebhook(db: Db, id: string): Promise<number | undefined> {
  return db.transaction(async (tx) => {
    await lockOpenDeliveries(tx, id);
    const [row] = await tx
      .update(webhookRegistrations)
      // The secrets go at once: nothing is signed for an unregistered webhook.
      .set({
        active: false,
        deletedAt: sql`now()`,
        updatedAt: sql`now()`,
        signingSecret: "",
        previousSigningSecret: null,
        previousSecretExpiresAt: null,
      })
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
 * Locks the webhook's deliveries that have not ended, before its row: the
 * statement that records outcomes locks deliveries, then their webhook (its
 * failure streak), and a transaction that took them the other way round
 * would deadlock with it.
 */
export async function lockOpenDeliveries(tx: Tx, webhookId: string): Promise<void> {
  const d = webhookDeliveries;
  await tx.select({ id: d.id }).from(d).where(openDeliveriesOf(webhookId)).orderBy(asc(d.id)).for("update");
}

/**
 * Cancels the webhook's pending and retrying deliveries, so that none of them
 * is sent, and removes its queued jobs (wake-ups for retries). A delivery
 * being attempted at that moment stays cancelled: its attempt is recorded,
 * but the delivery is not updated and nothing is scheduled.
 */
export async function cancelPendingDeliveries(tx: Tx, webhookId: string): Promise<number> {
  const d = webhookDeliveries;
  const rows = await tx
    .update(d)
    .set({
      status: "cancelled",
      errorMessage: CANCELLED_MESSAGE,
      nextAttemptAt: null,
      completedAt: sql`now()`,
      updatedAt: sql`now()`,
    })
    .where(openDeliveriesOf(webhookId))
    .returning({ id: d.id });
  await tx.execute(removeWakeJobs(sql`${webhookId}`));
  return rows.length;
}
