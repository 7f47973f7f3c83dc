import { and, desc, eq, lt, sql } from "drizzle-orm";
import { createBatcher } from "./batcher.js";
import { perDatabase, type Db, type Queryable } from "./client.js";
import { preparedStatement } from "./prepared.js";
import { deliveryAttempts, webhookDeliveries, webhookRegistrations, type DeliveryStatusValue } from "./schema.js";

/** Most outcomes per statement. */
const MAX_BATCH = 512;
/**
 * One statement at a time: outcomes that come while it runs wait for the
 * next, which takes them all. Waiting costs the deliveries nothing (their
 * runners send on meanwhile), and each statement is a round trip and a
 * commit: fewer, larger ones are what make deliveries cheap.
 */
const MAX_CONCURRENT_BATCHES = 1;

/** What became of a delivery: an attempt and the status it left, or an end without an attempt. */
export type Outcome = AttemptRecord | Closing;

export interface AttemptRecord {
  deliveryId: string;
  /** The delivery's resends when it was read (see `recordOutcome`). */
  resends: number;
  /** 1 for the first attempt. */
  attemptNumber: number;
  startedAt: Date;
  durationMs: number;
  responseCode: number | null;
  responseBody: string | null;
  errorMessage: string | null;
  /** The request as sent, headers with their signature. */
  request: { method: string; url: string; headers: Record<string, string> };
  responseHeaders: Record<string, string> | null;
  /** The delivery's status after this attempt. */
  status: Extract<DeliveryStatusValue, "retrying" | "succeeded" | "failed" | "expired">;
  /** When status is "retrying": when the next attempt is due. */
  nextAttemptAt: Date | null;
}

/** A delivery ended without an attempt: its event expired, its webhook went away, or it has no attempt left. */
export interface Closing {
  deliveryId: string;
  /** The delivery's resends when it was read (see `recordOutcome`). */
  resends: number;
  /** The delivery's attempt count, unchanged. */
  attemptCount: number;
  status: Extract<DeliveryStatusValue, "expired" | "cancelled" | "failed">;
  errorMessage: string;
}

const recorderFor = perDatabase((db) =>
  createBatcher({
    run: (outcomes: Outcome[]) => recordOutcomes(db, outcomes),
    maxBatchSize: MAX_BATCH,
    maxConcurrent: MAX_CONCURRENT_BATCHES,
    // Two outcomes of one delivery never share a statement: the second must see the first's update.
    key: (o) => o.deliveryId,
  }),
);

/**
 * Records the outcome: the attempt, the delivery's new status (with when its
 * next attempt is due) and the webhook's failure streak (since when every
 * attempt failed, and how many); one statement, committed when this resolves. The
 * delivery is only updated if it is still pending or retrying at the expected
 * attempt count, so a cancelled delivery stays cancelled. A delivery resent
 * since it was read keeps what the resend set (pending, due now, its attempts
 * and time to live renewed): an attempt already made is recorded and counted
 * (the resend's set of attempts grows by one to make up for it), an end
 * without one is dropped. Returns whether it was updated. Concurrent calls share the statement (see `recordOutcomes`).
 */
export function recordOutcome(db: Db, outcome: Outcome): Promise<boolean> {
  return recorderFor(db).add(outcome);
}

const recordStatement = preparedStatement<{ ord: number; updated: boolean }>(sql`
  with a as (
    select * from json_to_recordset(${sql.placeholder("input")}::json) as x(
      ord int, delivery_id uuid, resends int, attempted boolean, attempt_count int, started_at timestamptz, duration_ms int,
      response_code int, response_body text, error_message text, status delivery_status, next_attempt_at timestamptz,
      request_method text, request_url text, request_headers jsonb, response_headers jsonb
    )
  ), updated as (
    -- "d.resends = a.resends": not resent since it was read; else only the attempt counts.
    update ${webhookDeliveries} d set
      status = case when d.resends = a.resends then a.status else d.status end,
      attempt_count = a.attempt_count,
      max_attempts = case when d.resends = a.resends then d.max_attempts else d.max_attempts + 1 end,
      response_code = case when a.attempted then a.response_code else d.response_code end,
      response_body = case when a.attempted then a.response_body else d.response_body end,
      error_message = case when d.resends = a.resends then a.error_message else d.error_message end,
      last_attempt_at = case when a.attempted then a.started_at else d.last_attempt_at end,
      next_attempt_at = case when d.resends = a.resends then a.next_attempt_at else d.next_attempt_at end,
      completed_at = case when d.resends <> a.resends then d.completed_at when a.status = 'retrying' then null
        else now() end,
      updated_at = now()
    from a
    where d.id = a.delivery_id
      -- An index condition, whatever the planner guesses of the input's size.
      and d.id = any(array(select delivery_id from a))
      and d.attempt_count = a.attempt_count - a.attempted::int
      and d.status in ('pending', 'retrying')
      and (d.resends = a.resends or a.attempted)
    returning d.id, d.webhook_id
  ), streak_input as (
    select u.webhook_id, a.status = 'succeeded' as ok, a.started_at,
      max(a.started_at) filter (where a.status = 'succeeded') over (partition by u.webhook_id) as last_ok
    from a join updated u on u.id = a.delivery_id
    where a.attempted
  ), streaks as (
    -- Per webhook: whether an attempt succeeded, and the failures after the last success.
    select webhook_id, bool_or(ok) as any_ok,
      count(*) filter (where not ok and (last_ok is null or started_at > last_ok))::int as failures,
      min(started_at) filter (where not ok and (last_ok is null or started_at > last_ok)) as since
    from streak_input
    group by webhook_id
  ), streak as (
    -- The webhook's failure streak (for auto-disable); untouched while it succeeds and is not failing.
    -- A success ends a streak announced as failing: its recovery is due (announced by the health sweep).
    update ${webhookRegistrations} w set
      failing_since = case when s.any_ok then s.since else coalesce(w.failing_since, s.since) end,
      failure_count = case when s.any_ok then s.failures else w.failure_count + s.failures end,
      failing_noticed_at = case when s.any_ok then null else w.failing_noticed_at end,
      recovered_at = case when s.any_ok and w.failing_noticed_at is not null then now() else w.recovered_at end
    from streaks s
    where w.id = s.webhook_id and (s.failures > 0 or w.failing_since is not null)
  ), attempt as (
    insert into ${deliveryAttempts}
      (delivery_id, attempt_number, started_at, duration_ms, response_code, response_body, error_message,
        request_method, request_url, request_headers, response_headers)
    select delivery_id, attempt_count, started_at, duration_ms, response_code, response_body, error_message,
      request_method, request_url, request_headers, response_headers
    from a
    where attempted
    order by ord
    on conflict do nothing
  )
  select a.ord, updated.id is not null as updated
  from a left join updated on updated.id = a.delivery_id
  order by a.ord
`);

/**
 * `recordOutcome` for outcomes of different deliveries, in one statement (one
 * commit). Returns, in order, whether each delivery was updated.
 */
export async function recordOutcomes(db: Queryable, outcomes: Outcome[]): Promise<boolean[]> {
  const input = outcomes.map((o, ord) =>
    "attemptNumber" in o
      ? {
          ord,
          delivery_id: o.deliveryId,
          resends: o.resends,
          attempted: true,
          attempt_count: o.attemptNumber,
          started_at: o.startedAt.toISOString(),
          duration_ms: o.durationMs,
          response_code: o.responseCode,
          response_body: o.responseBody,
          error_message: o.errorMessage,
          status: o.status,
          next_attempt_at: o.nextAttemptAt?.toISOString() ?? null,
          request_method: o.request.method,
          request_url: o.request.url,
          request_headers: o.request.headers,
          response_headers: o.responseHeaders,
        }
      : {
          ord,
          delivery_id: o.deliveryId,
          resends: o.resends,
          attempted: false,
          attempt_count: o.attemptCount,
          error_message: o.errorMessage,
          status: o.status,
          next_attempt_at: null,
        },
  );
  const rows = await recordStatement(db, { input: JSON.stringify(input) });
  return rows.map((row) => row.updated);
}

export type AttemptRow = typeof deliveryAttempts.$inferSelect;

/** A delivery's attempts, newest first, before attempt number `before`. */
export async function listAttempts(
  db: Db,
  deliveryId: string,
  options: { before?: number | undefined; limit: number },
): Promise<AttemptRow[]> {
  const a = deliveryAttempts;
  return db
    .select()
    .from(a)
    .where(
      and(eq(a.deliveryId, deliveryId), options.before === undefined ? undefined : lt(a.attemptNumber, options.before)),
    )
    .orderBy(desc(a.attemptNumber))
    .limit(options.limit);
}

/** The attempts with these delivery ids and numbers, by primary key (in any order). */
export async function findAttempts(
  db: Db,
  keys: { deliveryId: string; attemptNumber: number }[],
): Promise<AttemptRow[]> {
  if (keys.length === 0) return [];
  const a = deliveryAttempts;
  const input = JSON.stringify(keys.map((k) => ({ d: k.deliveryId, n: k.attemptNumber })));
  return db
    .select()
    .from(a)
    .where(
      sql`(${a.deliveryId}, ${a.attemptNumber}) in (select d, n from json_to_recordset(${input}::json) as x(d uuid, n smallint))`,
    );
}
