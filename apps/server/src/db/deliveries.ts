import { and, asc, desc, eq, lt, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import {
  deliveryAttempts,
  eventRecords,
  webhookDeliveries,
  webhookRegistrations,
  type DeliveryStatusValue,
} from "./schema.js";
import { DELIVER_TASK, deliverJobKey } from "../delivery/task-names.js";

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

/** Retries of a job whose task threw (infrastructure errors, not HTTP failures). */
const JOB_MAX_ATTEMPTS = 25;

/**
 * Creates one delivery per active webhook of the event's namespace/event and
 * queues one job each, in one statement. Running it again for the same event
 * creates nothing twice. Returns how many deliveries were created.
 */
export async function fanOut(db: Db, eventId: string, maxAttempts: number): Promise<number> {
  const d = webhookDeliveries;
  const w = webhookRegistrations;
  const rows = await db.execute<{ created: number }>(sql`
    with ev as (
      select id, namespace, event from ${eventRecords} where id = ${eventId}
    ), inserted as (
      insert into ${d} (webhook_id, event_id, max_attempts)
      select ${w.id}, ev.id, ${maxAttempts}::int
      from ev join ${w} on ${w.namespace} = ev.namespace and ${w.event} = ev.event
      where ${w.active} and ${w.deletedAt} is null
      on conflict (event_id, webhook_id) do nothing
      returning id
    ), jobs as (
      select graphile_worker.add_jobs(array_agg((
        ${DELIVER_TASK}::text,
        json_build_object('deliveryId', inserted.id),
        null::text,
        null::timestamptz,
        ${JOB_MAX_ATTEMPTS}::smallint,
        ${deliverJobKey(sql`inserted.id`)},
        null::smallint,
        null::text[]
      )::graphile_worker.job_spec))
      from inserted
      having count(*) > 0
    )
    select (select count(*) from jobs)::int as created
  `);
  return rows[0]?.created ?? 0;
}

/** Everything an attempt needs: the delivery, its event and its webhook. */
export async function loadDelivery(db: Db, deliveryId: string) {
  const d = webhookDeliveries;
  const e = eventRecords;
  const w = webhookRegistrations;
  const [row] = await db
    .select({
      id: d.id,
      status: d.status,
      attemptCount: d.attemptCount,
      maxAttempts: d.maxAttempts,
      eventId: e.id,
      payload: e.payload,
      expiresAt: e.expiresAt,
      // Measured by the database's clock, like created_at: immune to clock skew.
      eventAgeMs: sql<number>`(extract(epoch from now() - ${e.createdAt}) * 1000)::float8`,
      webhookId: w.id,
      url: w.url,
      method: w.method,
      headers: w.headers,
      timeout: w.timeout,
      active: w.active,
      deletedAt: w.deletedAt,
      signingSecret: w.signingSecret,
    })
    .from(d)
    .innerJoin(e, eq(e.id, d.eventId))
    .innerJoin(w, eq(w.id, d.webhookId))
    .where(eq(d.id, deliveryId));
  return row;
}
export type LoadedDelivery = NonNullable<Awaited<ReturnType<typeof loadDelivery>>>;

export interface AttemptRecord {
  deliveryId: string;
  /** 1 for the first attempt. */
  attemptNumber: number;
  startedAt: Date;
  durationMs: number;
  responseCode: number | null;
  responseBody: string | null;
  errorMessage: string | null;
  /** The delivery's status after this attempt. */
  status: Extract<DeliveryStatusValue, "retrying" | "succeeded" | "failed" | "expired">;
  /** When status is "retrying": when the next attempt runs. */
  nextAttemptAt: Date | null;
}

/**
 * Records the attempt, updates the delivery and, when retrying, queues the next
 * attempt's job: one statement. The delivery is only updated if it is still
 * pending or retrying at the expected attempt count, so a cancelled delivery
 * stays cancelled and schedules nothing. Returns whether it was updated.
 */
export async function recordAttempt(db: Db, a: AttemptRecord): Promise<boolean> {
  const d = webhookDeliveries;
  const nextAt = a.nextAttemptAt?.toISOString() ?? null;
  const startedAt = a.startedAt.toISOString();
  const rows = await db.execute<{ updated: number; scheduled: number }>(sql`
    with updated as (
      update ${d} set
        status = ${a.status}::delivery_status,
        attempt_count = ${a.attemptNumber}::int,
        response_code = ${a.responseCode}::int,
        response_body = ${a.responseBody}::text,
        error_message = ${a.errorMessage}::text,
        last_attempt_at = ${startedAt}::timestamptz,
        next_attempt_at = ${nextAt}::timestamptz,
        completed_at = case when ${a.status}::delivery_status = 'retrying' then null else now() end,
        updated_at = now()
      where ${d.id} = ${a.deliveryId}
        and ${d.attemptCount} = ${a.attemptNumber - 1}::int
        and ${d.status} in ('pending', 'retrying')
      returning ${d.id}
    ), attempt as (
      insert into ${deliveryAttempts}
        (delivery_id, attempt_number, started_at, duration_ms, response_code, response_body, error_message)
      values (
        ${a.deliveryId}, ${a.attemptNumber}::smallint, ${startedAt}::timestamptz, ${a.durationMs}::int,
        ${a.responseCode}::int, ${a.responseBody}::text, ${a.errorMessage}::text
      )
      on conflict do nothing
    ), next_job as (
      select graphile_worker.add_job(
        ${DELIVER_TASK}::text,
        json_build_object('deliveryId', updated.id),
        run_at => ${nextAt}::timestamptz,
        max_attempts => ${JOB_MAX_ATTEMPTS}::int,
        job_key => ${deliverJobKey(sql`updated.id`)}
      )
      from updated
      where ${a.status}::delivery_status = 'retrying'
    )
    select (select count(*) from updated)::int as updated, (select count(*) from next_job)::int as scheduled
  `);
  return (rows[0]?.updated ?? 0) > 0;
}

/**
 * Ends a pending or retrying delivery without an attempt (expired, or its
 * webhook is gone). Returns false if it had already ended.
 */
export async function closeDelivery(
  db: Db,
  deliveryId: string,
  status: Extract<DeliveryStatusValue, "expired" | "cancelled">,
  errorMessage: string,
): Promise<boolean> {
  const d = webhookDeliveries;
  const rows = await db
    .update(d)
    .set({ status, errorMessage, nextAttemptAt: null, completedAt: sql`now()`, updatedAt: sql`now()` })
    .where(and(eq(d.id, deliveryId), sql`${d.status} in ('pending', 'retrying')`))
    .returning({ id: d.id });
  return rows.length > 0;
}

/** A webhook's number of deliveries per status. */
export async function countDeliveriesByStatus(db: Db, webhookId: string) {
  const d = webhookDeliveries;
  return db
    .select({ status: d.status, count: sql<number>`count(*)::int` })
    .from(d)
    .where(eq(d.webhookId, webhookId))
    .groupBy(d.status);
}

/** A webhook's deliveries, most recent first, before `beforeId`. */
export async function listWebhookDeliveries(
  db: Db,
  webhookId: string,
  options: { beforeId?: string | undefined; limit: number },
): Promise<DeliveryRow[]> {
  const d = webhookDeliveries;
  return db
    .select()
    .from(d)
    .where(and(eq(d.webhookId, webhookId), options.beforeId ? lt(d.id, options.beforeId) : undefined))
    .orderBy(desc(d.id))
    .limit(options.limit);
}

/** All of an event's deliveries, oldest first. */
export async function listEventDeliveries(db: Db, eventId: string): Promise<DeliveryRow[]> {
  const d = webhookDeliveries;
  return db.select().from(d).where(eq(d.eventId, eventId)).orderBy(asc(d.id));
}
