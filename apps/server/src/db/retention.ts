import { sql, type SQL } from "drizzle-orm";
import type { RetainedTable } from "../observability/metrics.js";
import type { Db, Queryable, Sql } from "./client.js";
import { uuidv7Floor } from "./ids.js";
import { FANOUT_TASK, RETENTION_TASK } from "./jobs.js";
import { preparedStatement } from "./prepared.js";
import { deliveryAttempts, eventRecords, webhookDeliveries, webhookRegistrations, webhookRunners } from "./schema.js";

// Retention: what is old enough goes, in small batches. Each batch is a
// short transaction of two statements. The first locks the events it takes
// with SKIP LOCKED, so that batches running at once, on one server or
// several, take different events. The second, whose snapshot is taken once
// those locks are held, locks their deliveries and reads them as they are
// now: a delivery resent meanwhile, or added by a replay or fan-out that
// committed while the first statement ran (they hold the event FOR SHARE
// while they add it), keeps its event. (In one statement, its snapshot
// older than its locks, such a delivery went unseen: its event lost its
// payload with a delivery still to make, or the batch failed on the foreign
// key.) Nothing waits on a batch for longer than the batch takes.

const e = eventRecords;
const d = webhookDeliveries;
const a = deliveryAttempts;
const w = webhookRegistrations;

/** Rows deleted, by table (the label values of httpqueue_retention_deleted_total). */
export type Deleted = Record<RetainedTable, number>;

/**
 * Up to `limit` events that `older` selects, in its `order`, none of whose
 * deliveries is pending or retrying (as far as this statement sees), locked.
 */
const lockStatement = (older: SQL, order: SQL) =>
  preparedStatement<{ id: string }>(sql`
    select ${e.id} as id from ${e}
    where ${older}
      -- Looked up per event by the (event, webhook) index. OFFSET 0 keeps the
      -- planner from making this an anti-join that reads the deliveries in
      -- event order (every ended one before the first open one), and the
      -- cast from reading the whole due index (the open deliveries) per event.
      and not exists (
        select 1 from ${d} where ${d.eventId} = ${e.id} and ${d.status}::text in ('pending', 'retrying') offset 0
      )
    order by ${order}
    limit ${sql.placeholder("limit")}::int
    for update skip locked
  `);

/**
 * SQL for the CTEs `due` (the events locked, `ids`), `held` (their
 * deliveries, locked and read as they are now), `fanning_out` (those with a
 * fan-out job queued), `gone` (those whose deliveries have all ended, with
 * no fan-out to come) and `gone_deliveries`.
 */
const endedEvents = sql`
  due as (
    select x.id from unnest(${sql.placeholder("ids")}::uuid[]) as x(id)
  ), held as (
    select ${d.id} as id, ${d.eventId} as event_id, ${d.status} as status from ${d}
    where ${d.eventId} = any(${sql.placeholder("ids")}::uuid[])
    for update
  ), fanning_out as (
    -- Events whose deliveries a fan-out job has yet to create (one wider than
    -- the push's inline fan-out): none ended, whatever their age. One read of
    -- the jobs table a batch (it holds the queued jobs only).
    select (j.payload ->> 'eventId')::uuid as id from graphile_worker._private_jobs j
    where j.task_id = (select t.id from graphile_worker._private_tasks t where t.identifier = ${sql.raw(`'${FANOUT_TASK}'`)})
      and j.payload ->> 'eventId' = any(${sql.placeholder("ids")}::text[])
  ), gone as (
    select due.id from due
    where not exists (select 1 from held h where h.event_id = due.id and h.status in ('pending', 'retrying'))
      and due.id not in (select id from fanning_out)
  ), gone_deliveries as (
    select h.id from held h where h.event_id in (select id from gone)
  )`;

/**
 * Runs `change` (with the `ids` of the events `lock` locked) in a transaction
 * that locks them first; resolves with no row when none was locked.
 */
async function inBatch<Row extends Record<string, unknown>>(
  db: Db,
  lock: (tx: Queryable, values: Record<string, unknown>) => Promise<{ id: string }[]>,
  change: (tx: Queryable, values: Record<string, unknown>) => Promise<Row[]>,
  values: Record<string, unknown>,
): Promise<Row | undefined> {
  let row: Row | undefined;
  await db.$client.begin(async (tx) => {
    const locked = await lock(tx, values);
    if (locked.length > 0) [row] = await change(tx, { ids: `{${locked.map((l) => l.id).join(",")}}` });
  });
  return row;
}

// Events by id (UUIDv7: time-ordered), a range of the primary key.
const lockByIdStatement = lockStatement(sql`${e.id} < ${sql.placeholder("before")}::uuid`, sql`${e.id}`);
const deleteStatement = preparedStatement<{ events: number; deliveries: number; attempts: number }>(sql`
  with ${endedEvents},
  attempts as (
    delete from ${a} where ${a.deliveryId} in (select id from gone_deliveries) returning 1
  ), deliveries as (
    delete from ${d} where ${d.id} in (select id from gone_deliveries) returning 1
  ), events as (
    delete from ${e} where ${e.id} in (select id from gone) returning 1
  )
  select (select count(*) from events)::int as events, (select count(*) from deliveries)::int as deliveries,
    (select count(*) from attempts)::int as attempts
`);

/**
 * Deletes up to `limit` events created before `before` whose deliveries have
 * all ended, with their deliveries and attempts (the foreign keys are checked
 * at the end of the statement: the order of the deletes does not matter).
 */
export async function deleteEndedEvents(
  db: Db,
  before: Date,
  limit: number,
): Promise<Pick<Deleted, "event_records" | "webhook_deliveries" | "delivery_attempts">> {
  const row = await inBatch(db, lockByIdStatement, deleteStatement, { before: uuidv7Floor(before), limit });
  return {
    event_records: row?.events ?? 0,
    webhook_deliveries: row?.deliveries ?? 0,
    delivery_attempts: row?.attempts ?? 0,
  };
}

// Through event_records_payload_kept_idx (created_at, of the events that have their payload).
const lockKeptStatement = lockStatement(
  sql`${e.payloadRemovedAt} is null and ${e.createdAt} < ${sql.placeholder("before")}::timestamptz`,
  sql`${e.createdAt}`,
);
const blankStatement = preparedStatement<{ events: number }>(sql`
  with ${endedEvents},
  attempts as (
    update ${a} set response_body = null
    where ${a.deliveryId} in (select id from gone_deliveries) and ${a.responseBody} is not null
    returning 1
  ), deliveries as (
    update ${d} set response_body = null
    where ${d.id} in (select id from gone_deliveries) and ${d.responseBody} is not null
    returning 1
  ), events as (
    update ${e} set payload = '', payload_removed_at = now() where ${e.id} in (select id from gone) returning 1
  )
  select (select count(*) from events)::int as events, (select count(*) from attempts)::int as attempts,
    (select count(*) from deliveries)::int as deliveries
`);

/**
 * Blanks the payload of up to `limit` events created before `before` whose
 * deliveries have all ended (payload "", payload_removed_at set), and the
 * response bodies of their deliveries and attempts. Returns how many events.
 */
export async function removeEndedPayloads(db: Db, before: Date, limit: number): Promise<number> {
  const row = await inBatch(db, lockKeptStatement, blankStatement, { before: before.toISOString(), limit });
  return row?.events ?? 0;
}

const unregisteredStatement = preparedStatement<{ webhooks: number; runners: number }>(sql`
  with gone as (
    select ${w.id} as id from ${w}
    where ${w.deletedAt} < ${sql.placeholder("unregisteredBefore")}::timestamptz
      -- Per webhook, by its index (OFFSET 0: not an anti-join that reads every delivery).
      and not exists (select 1 from ${d} where ${d.webhookId} = ${w.id} offset 0)
    order by ${w.id}
    limit ${sql.placeholder("limit")}::int
    for update skip locked
  ), runners as (
    delete from ${webhookRunners} where ${webhookRunners.webhookId} in (select id from gone) returning 1
  ), webhooks as (
    delete from ${w} where ${w.id} in (select id from gone) returning 1
  )
  select (select count(*) from webhooks)::int as webhooks, (select count(*) from runners)::int as runners
`);

/**
 * Deletes up to `limit` webhooks unregistered before `unregisteredBefore`
 * that have no delivery left (retention took the last), with their runner
 * rows. (A push that read a webhook as registered just before it was
 * unregistered may still be adding its delivery: the grace between
 * unregistering and deleting leaves it the time to.)
 */
export async function deleteUnregisteredWebhooks(
  db: Db,
  unregisteredBefore: Date,
  limit: number,
): Promise<Pick<Deleted, "webhook_registrations" | "webhook_runners">> {
  // With few webhooks the planner reckons that a sequential scan finds one of a
  // webhook's deliveries at once; for one that has none left (the webhooks
  // this is for) it reads them all. Its index it is.
  const [row] = await db.$client.begin(async (tx) => {
    await tx`set local enable_seqscan = off`;
    return unregisteredStatement(tx, { unregisteredBefore: unregisteredBefore.toISOString(), limit });
  });
  return { webhook_registrations: row?.webhooks ?? 0, webhook_runners: row?.runners ?? 0 };
}

const failedJobsStatement = preparedStatement<{ jobs: number }>(sql`
  with gone as (
    select j.id from graphile_worker._private_jobs j
    where j.task_id = any(array(
        select t.id from graphile_worker._private_tasks t where t.identifier like 'httpqueue.%'
      ))
      and j.attempts >= j.max_attempts and j.locked_at is null
      and j.updated_at < ${sql.placeholder("before")}::timestamptz
    order by j.id
    limit ${sql.placeholder("limit")}::int
    for update skip locked
  ), jobs as (
    delete from graphile_worker._private_jobs j where j.id in (select id from gone) returning 1
  )
  select count(*)::int as jobs from jobs
`);

/**
 * Deletes up to `limit` jobs of httpqueue's tasks that failed for good (no
 * attempt left) before `before`. (The table, not graphile-worker's `jobs`
 * view: the view cannot be deleted from.)
 */
export async function deleteFailedJobs(db: Queryable, before: Date, limit: number): Promise<number> {
  const [row] = await failedJobsStatement(db, { before: before.toISOString(), limit });
  return row?.jobs ?? 0;
}

/**
 * Queues a sweep now, under the job key that graphile-worker's cron uses as
 * well: one waiting sweep at most, however many servers queue it.
 */
export async function queueRetentionSweep(sql: Sql): Promise<void> {
  await sql`select graphile_worker.add_job(${RETENTION_TASK}, '{}'::json, job_key => ${RETENTION_TASK}, max_attempts => 1)`;
}
