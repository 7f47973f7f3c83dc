import { and, desc, eq, isNotNull, isNull, lte, gte, sql } from "drizzle-orm";
import type { Db, Tx } from "./client.js";
import { storeEvents, type NewEvent } from "./events.js";
import { webhookDeliveries, webhookRegistrations } from "./schema.js";
import { cancelPendingDeliveries, lockOpenDeliveries, type WebhookRow } from "./webhooks.js";

// The server's own changes to a webhook's state: deactivating it (its
// receiver answered 410 Gone, or has failed for too long), and telling
// operators, through events of its own pushed in the same transaction, so
// that nothing is changed without being told nor told without being changed.

/** A webhook whose state changed, with the error of its latest failed delivery. */
export interface Changed {
  webhook: WebhookRow;
  lastError: string | null;
  /** Deliveries cancelled with it (when deactivated). */
  cancelled: number;
}

/** The operator events to store for the webhooks that changed (built by the caller). */
export type EventsFor = (changes: { disabled: Changed[]; failing: Changed[]; recovered: Changed[] }) => NewEvent[];

const w = webhookRegistrations;

async function lastErrors(tx: Tx, rows: WebhookRow[], cancelled = new Map<string, number>()): Promise<Changed[]> {
  const d = webhookDeliveries;
  return Promise.all(
    rows.map(async (webhook) => {
      const [last] = await tx
        .select({ error: d.errorMessage })
        .from(d)
        .where(and(eq(d.webhookId, webhook.id), isNotNull(d.errorMessage), isNotNull(d.lastAttemptAt)))
        .orderBy(desc(d.id))
        .limit(1);
      return { webhook, lastError: last?.error ?? null, cancelled: cancelled.get(webhook.id) ?? 0 };
    }),
  );
}

/** Deactivates the webhooks `where` selects (active ones only), for `reason`, cancelling their pending deliveries. */
async function disable(tx: Tx, where: ReturnType<typeof and>, reason: "gone" | "failing"): Promise<Changed[]> {
  const rows = await tx
    .update(w)
    .set({ active: false, disabledReason: reason, disabledAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(w.active, true), isNull(w.deletedAt), where))
    .returning();
  const cancelled = new Map<string, number>();
  for (const row of rows) cancelled.set(row.id, await cancelPendingDeliveries(tx, row.id));
  return lastErrors(tx, rows, cancelled);
}

/**
 * The receiver answered 410 Gone: deactivates the webhook (unless it is
 * already), cancels its pending deliveries and stores the operator events,
 * in one transaction. Returns the webhook, or undefined when it was not
 * active any more.
 */
export async function disableGoneWebhook(db: Db, webhookId: string, events: EventsFor): Promise<Changed | undefined> {
  return db.transaction(async (tx) => {
    await lockOpenDeliveries(tx, webhookId);
    const [changed] = await disable(tx, eq(w.id, webhookId), "gone");
    if (!changed) return undefined;
    await storeEvents(tx, events({ disabled: [changed], failing: [], recovered: [] }));
    return changed;
  });
}

export interface HealthSettings {
  /** Fail for this long (and at least `minFailures` times) to be deactivated; 0: never. */
  autoDisableAfterMs: number;
  minFailures: number;
  /** Fail for this long to be announced as failing. */
  failingNoticeAfterMs: number;
}

/**
 * One look at the webhooks that are failing, in one transaction: those that
 * failed for long enough are deactivated (pending deliveries cancelled),
 * those failing for `failingNoticeAfterMs` are announced once per streak, and
 * those announced that have succeeded since are announced as recovered; the
 * operator events are stored with the changes. Servers sweeping at once do
 * not announce anything twice: each change is an update whose condition the
 * second server sees no longer holds.
 */
export async function sweepWebhookHealth(
  db: Db,
  settings: HealthSettings,
  events: EventsFor,
): Promise<{ disabled: Changed[]; failing: Changed[]; recovered: Changed[] }> {
  return db.transaction(async (tx) => {
    const ago = (ms: number) => sql`now() - make_interval(secs => ${ms / 1000})`;
    const disabled =
      settings.autoDisableAfterMs > 0
        ? await disable(
            tx,
            and(lte(w.failingSince, ago(settings.autoDisableAfterMs)), gte(w.failureCount, settings.minFailures)),
            "failing",
          )
        : [];
    const failingRows = await tx
      .update(w)
      .set({ failingNoticedAt: sql`now()` })
      .where(
        and(
          eq(w.active, true),
          isNull(w.deletedAt),
          isNull(w.failingNoticedAt),
          lte(w.failingSince, ago(settings.failingNoticeAfterMs)),
        ),
      )
      .returning();
    const recoveredRows = await tx.update(w).set({ recoveredAt: null }).where(isNotNull(w.recoveredAt)).returning();
    const changes = {
      disabled,
      failing: await lastErrors(tx, failingRows),
      recovered: recoveredRows.map((webhook) => ({ webhook, lastError: null, cancelled: 0 })),
    };
    const toStore = events(changes);
    if (toStore.length > 0) await storeEvents(tx, toStore);
    return changes;
  });
}
