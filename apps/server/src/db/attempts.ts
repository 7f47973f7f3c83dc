import { eq, sql } from "drizzle-orm";
import { createBatcher } from "./batcher.js";
import { perDatabase, type Db } from "./client.js";
import { preparedStatement } from "./prepared.js";
import {
  deliveryAttempts,
  eventRecords,
  webhookDeliveries,
  webhookRegistrations,
  type DeliveryStatusValue,
} from "./schema.js";
import { deliverJobSpec } from "../delivery/task-names.js";

// The two statements of every delivery attempt: loading what it needs, and
// recording what happened. Attempts running at the same time share them (see
// db/batcher.ts): each statement is a round trip, and round trips, more than
// the work inside them, are what a delivery costs.

/** Most deliveries per load or record statement; about the worker's concurrency. */
const MAX_BATCH = 64;
/** Statements of each kind running at once: several fill the pool's connections in turn. */
const MAX_CONCURRENT_BATCHES = 2;

/** One row per id in the JSON array `ids` (the loaded ones), in no particular order. */
function selectDeliveries(db: Db) {
  const d = webhookDeliveries;
  const e = eventRecords;
  const w = webhookRegistrations;
  return (
    db
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
      .where(
        sql`${d.id} = any(array(select value::uuid from json_array_elements_text(${sql.placeholder("ids")}::json)))`,
      )
      // Named, so that each connection parses and plans it once (see prepared.ts).
      .prepare("load_deliveries")
  );
}

/** Everything an attempt needs: the delivery, its event and its webhook. */
export type LoadedDelivery = Awaited<ReturnType<ReturnType<typeof selectDeliveries>["execute"]>>[number];

const selectFor = perDatabase(selectDeliveries);

/** `loadDelivery` for several deliveries in one statement: each one's row, or undefined, in order. */
export async function loadDeliveries(db: Db, ids: string[]): Promise<(LoadedDelivery | undefined)[]> {
  const rows = await selectFor(db).execute({ ids: JSON.stringify(ids) });
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => byId.get(id));
}

const loaderFor = perDatabase((db) =>
  createBatcher({
    run: (ids: string[]) => loadDeliveries(db, ids),
    maxBatchSize: MAX_BATCH,
    maxConcurrent: MAX_CONCURRENT_BATCHES,
  }),
);

/** The delivery, its event and its webhook; undefined for an unknown id. Concurrent calls share a statement. */
export function loadDelivery(db: Db, deliveryId: string): Promise<LoadedDelivery | undefined> {
  return loaderFor(db).add(deliveryId);
}

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

const recorderFor = perDatabase((db) =>
  createBatcher({
    run: (attempts: AttemptRecord[]) => recordAttempts(db, attempts),
    maxBatchSize: MAX_BATCH,
    maxConcurrent: MAX_CONCURRENT_BATCHES,
    // Two attempts of one delivery never share a statement: the second must see the first's update.
    key: (a) => a.deliveryId,
  }),
);

/**
 * Records the attempt, updates the delivery and, when retrying, queues the next
 * attempt's job: one statement, committed when this resolves. The delivery is
 * only updated if it is still pending or retrying at the expected attempt
 * count, so a cancelled delivery stays cancelled and schedules nothing.
 * Returns whether it was updated. Concurrent calls share the statement (see
 * `recordAttempts`).
 */
export function recordAttempt(db: Db, attempt: AttemptRecord): Promise<boolean> {
  return recorderFor(db).add(attempt);
}

const recordStatement = preparedStatement<{ ord: number; updated: boolean }>(sql`
  with a as (
    select * from json_to_recordset(${sql.placeholder("input")}::json) as x(
      ord int, delivery_id uuid, attempt_number int, started_at timestamptz, duration_ms int, response_code int,
      response_body text, error_message text, status delivery_status, next_attempt_at timestamptz
    )
  ), updated as (
    update ${webhookDeliveries} d set
      status = a.status,
      attempt_count = a.attempt_number,
      response_code = a.response_code,
      response_body = a.response_body,
      error_message = a.error_message,
      last_attempt_at = a.started_at,
      next_attempt_at = a.next_attempt_at,
      completed_at = case when a.status = 'retrying' then null else now() end,
      updated_at = now()
    from a
    where d.id = a.delivery_id
      -- An index condition, whatever the planner guesses of the input's size.
      and d.id = any(array(select delivery_id from a))
      and d.attempt_count = a.attempt_number - 1
      and d.status in ('pending', 'retrying')
    returning d.id, a.status, a.next_attempt_at, a.attempt_number
  ), attempt as (
    insert into ${deliveryAttempts}
      (delivery_id, attempt_number, started_at, duration_ms, response_code, response_body, error_message)
    select delivery_id, attempt_number, started_at, duration_ms, response_code, response_body, error_message
    from a
    order by ord
    on conflict do nothing
  ), next_job as (
    select graphile_worker.add_jobs(array_agg(
      ${deliverJobSpec(sql`updated.id`, sql`updated.attempt_number + 1`, sql`updated.next_attempt_at`)}
    ))
    from updated
    where updated.status = 'retrying'
    having count(*) > 0
  )
  select a.ord, updated.id is not null as updated, (select count(*) from next_job)::int as scheduled
  from a left join updated on updated.id = a.delivery_id
  order by a.ord
`);

/**
 * `recordAttempt` for attempts of different deliveries, in one statement (one
 * commit). Returns, in order, whether each delivery was updated.
 */
export async function recordAttempts(db: Db, attempts: AttemptRecord[]): Promise<boolean[]> {
  const input = attempts.map((a, ord) => ({
    ord,
    delivery_id: a.deliveryId,
    attempt_number: a.attemptNumber,
    started_at: a.startedAt.toISOString(),
    duration_ms: a.durationMs,
    response_code: a.responseCode,
    response_body: a.responseBody,
    error_message: a.errorMessage,
    status: a.status,
    next_attempt_at: a.nextAttemptAt?.toISOString() ?? null,
  }));
  const rows = await recordStatement(db, { input: JSON.stringify(input) });
  return rows.map((row) => row.updated);
}
