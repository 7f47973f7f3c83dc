import { and, eq, gte, inArray, isNull, sql } from "drizzle-orm";
import type { Db, Tx } from "./client.js";
import type { DeliveryRow } from "./deliveries.js";
import { uuidv7Floor } from "./ids.js";
import { addJobs, deliverJobSpec, queued } from "./jobs.js";
import { eventRecords, webhookDeliveries, webhookRegistrations } from "./schema.js";

// Deliveries made again on an operator's demand: one resent, a webhook's
// failures recovered, the events it missed replayed. Each is one transaction
// that also queues the job that delivers them; each can run twice, or on two
// servers at once, without sending anything twice. Each holds the events it
// sends again (FOR SHARE) until it commits, and leaves out those whose
// payload retention removed: retention's sweep skips events held so, and one
// that waited for a sweep reads what the sweep left.

/** Why a webhook cannot be delivered to now: it went, or it is not active. */
export type Unavailable = "not found" | "inactive";

const d = webhookDeliveries;
const w = webhookRegistrations;
const e = eventRecords;

/** The delivery's event's payload was removed by retention: it cannot be sent again. */
export interface PayloadRemoved {
  problem: "payload removed";
  eventId: string;
  removedAt: Date;
}

/**
 * SQL set on a delivery made again: due now, with a full set of attempts
 * (the webhook's, or `defaultMaxAttempts`) after those it made, and its
 * event's time to live counted from now; counted as resent, so that the
 * outcome of an attempt read before does not undo this (db/attempts.ts).
 * Status is the caller's.
 */
const again = (defaultMaxAttempts: number) => ({
  resends: sql`${d.resends} + 1`,
  maxAttempts: sql`${d.attemptCount} + coalesce(
    (select ${w.maxAttempts} from ${w} where ${w.id} = ${d.webhookId}), ${defaultMaxAttempts}::int)`,
  nextAttemptAt: sql`now()`,
  completedAt: null,
  expiresAt: sql`now() + make_interval(secs => (select e.ttl_seconds from ${eventRecords} e where e.id = ${d.eventId}))`,
  updatedAt: sql`now()`,
});

/** Queues a job that delivers what is due for the webhook. */
async function wake(tx: Tx, webhookId: string): Promise<void> {
  await tx.execute(addJobs(sql`select ${deliverJobSpec(sql`${webhookId}::uuid`)} as spec`));
}

/** Whether the webhook can be delivered to; it stays so until the transaction ends. */
async function availability(tx: Tx, webhookId: string): Promise<Unavailable | undefined> {
  const [row] = await tx.select({ active: w.active, deletedAt: w.deletedAt }).from(w).where(eq(w.id, webhookId));
  if (!row || row.deletedAt !== null) return "not found";
  return row.active ? undefined : "inactive";
}

/** Runs `change` in a transaction if the webhook can be delivered to: how many it made again, or why not. */
function withAvailableWebhook(
  db: Db,
  webhookId: string,
  change: (tx: Tx) => Promise<number>,
): Promise<number | Unavailable> {
  return db.transaction(async (tx) => (await availability(tx, webhookId)) ?? change(tx));
}

/**
 * Makes a new attempt of the delivery due now: an ended one goes back to
 * pending. Returns it, or why it could not be: no such delivery, or its
 * webhook is unregistered or inactive.
 */
export async function resendDelivery(
  db: Db,
  deliveryId: string,
  defaultMaxAttempts: number,
): Promise<DeliveryRow | { problem: Unavailable | "no delivery" } | PayloadRemoved> {
  return db.transaction(async (tx) => {
    const [target] = await tx
      .select({ webhookId: d.webhookId, eventId: d.eventId })
      .from(d)
      .where(eq(d.id, deliveryId));
    if (!target) return { problem: "no delivery" };
    const problem = await availability(tx, target.webhookId);
    if (problem !== undefined) return { problem };
    const [event] = await tx
      .select({ removedAt: e.payloadRemovedAt })
      .from(e)
      .where(eq(e.id, target.eventId))
      .for("share");
    // Deleted by retention since the first read.
    if (!event) return { problem: "no delivery" };
    if (event.removedAt !== null) {
      return { problem: "payload removed", eventId: target.eventId, removedAt: event.removedAt };
    }
    const [row] = await tx
      .update(d)
      .set({
        status: sql`case when ${d.status} in ('pending', 'retrying') then ${d.status} else 'pending' end`,
        ...again(defaultMaxAttempts),
      })
      .where(eq(d.id, deliveryId))
      .returning();
    if (!row) throw new Error("resend updated no row");
    await wake(tx, row.webhookId);
    return row;
  });
}

/**
 * Resends every failed or expired delivery of the webhook created at or
 * after `since`, but those whose event's payload retention removed. Returns
 * how many, or why it could not.
 */
export async function recoverWebhook(
  db: Db,
  webhookId: string,
  since: Date,
  defaultMaxAttempts: number,
): Promise<number | Unavailable> {
  return withAvailableWebhook(db, webhookId, async (tx) => {
    const failed = and(
      eq(d.webhookId, webhookId),
      gte(d.id, uuidv7Floor(since)),
      gte(d.createdAt, since),
      inArray(d.status, ["failed", "expired"]),
    );
    const rows = await tx
      .update(d)
      .set({
        status: "pending",
        ...again(defaultMaxAttempts),
      })
      .where(
        and(
          failed,
          inArray(
            d.eventId,
            tx
              .select({ id: e.id })
              .from(e)
              .where(and(isNull(e.payloadRemovedAt), inArray(e.id, tx.select({ id: d.eventId }).from(d).where(failed))))
              .for("share"),
          ),
        ),
      )
      .returning({ id: d.id });
    const n = rows.length;
    if (n > 0) await wake(tx, webhookId);
    return n;
  });
}

/**
 * Creates a delivery to the webhook for each event of its namespace/event
 * created at or after `since` that has none (the unique index of event and
 * webhook keeps a second call, or a concurrent one, from making any twice),
 * due now, its time to live counted from now; not for events whose payload
 * retention removed. Returns how many, or why it could not.
 */
export async function replayMissed(
  db: Db,
  webhookId: string,
  since: Date,
  defaultMaxAttempts: number,
): Promise<number | Unavailable> {
  return withAvailableWebhook(db, webhookId, async (tx) => {
    const rows = await tx.execute<{ n: number }>(sql`
      with inserted as (
        insert into ${d} (webhook_id, event_id, max_attempts, ordering_key, next_attempt_at, expires_at)
        select w.id, e.id, coalesce(w.max_attempts, ${defaultMaxAttempts}::int), e.ordering_key, now(),
          now() + make_interval(secs => e.ttl_seconds)
        from ${w} w
        join ${eventRecords} e on e.namespace = w.namespace
        where w.id = ${webhookId} and e.id >= ${uuidv7Floor(since)} and e.created_at >= ${since.toISOString()}
          -- Its event pattern and filter (see the migrations), as a push would match them.
          -- Not one whose payload retention removed (its "" is no JSON for a filter to read).
          and case when e.payload_removed_at is null then httpqueue_event_matches(w.event, w.filter, e.event, e.payload) end
        order by e.id
        for share of e
        on conflict (event_id, webhook_id) do nothing
        returning webhook_id
      ), jobs as (
        ${addJobs(sql`select ${deliverJobSpec(sql`webhook_id`)} as spec from inserted group by webhook_id`)}
      )
      select count(*)::int as n, ${queued("jobs")} as queued from inserted`);
    return rows[0]?.n ?? 0;
  });
}
