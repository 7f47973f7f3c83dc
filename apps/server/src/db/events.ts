import { and, desc, eq, getTableColumns, gte, lt, sql } from "drizzle-orm";
import { createBatcher } from "./batcher.js";
import { perDatabase, type Db, type Queryable } from "./client.js";
import { preparedStatement } from "./prepared.js";
import { receivingWebhooks } from "./deliveries.js";
import { eventRecords, webhookDeliveries } from "./schema.js";
import { uuidv7Floor } from "./ids.js";
import { addJobs, deliverJobSpec, fanOutJobSpec, queued } from "./jobs.js";

export type EventRow = typeof eventRecords.$inferSelect;

export interface NewEvent {
  namespace: string;
  event: string;
  payload: string;
  ttlSeconds: number;
  metadata: Record<string, string>;
  idempotencyKey: string | null;
  /** Its deliveries to webhooks that keep order are made one after another with others of this key. */
  orderingKey: string;
  /** Attempts each of its deliveries may make, unless its webhook says otherwise. */
  maxAttempts: number;
}

export interface InsertedEvent {
  eventId: string;
  duplicate: boolean;
}

/**
 * Pushes that arrive together share a statement, so that they share a commit:
 * every statement that queues a job also sends graphile-worker's NOTIFY, and
 * PostgreSQL commits such transactions one at a time, each with its own WAL
 * flush. One commit for many events is what lets ingest scale.
 */
const MAX_BATCH_EVENTS = 500;
const MAX_BATCH_PAYLOAD_BYTES = 4 * 1024 * 1024;
const MAX_CONCURRENT_BATCHES = 2;
/** Payload bytes waiting to be stored before pushes are refused (RESOURCE_EXHAUSTED). */
const MAX_QUEUED_PAYLOAD_BYTES = 64 * 1024 * 1024;

const batcherFor = perDatabase((db) =>
  createBatcher({
    run: (inputs: NewEvent[]) => storeEvents(db, inputs),
    maxBatchSize: MAX_BATCH_EVENTS,
    maxConcurrent: MAX_CONCURRENT_BATCHES,
    weight: (e) => e.payload.length,
    maxBatchWeight: MAX_BATCH_PAYLOAD_BYTES,
    maxQueuedWeight: MAX_QUEUED_PAYLOAD_BYTES,
  }),
);

/**
 * Stores the event with its deliveries and their jobs (for a fan-out wider
 * than `MAX_INLINE_FANOUT`, a fan-out job instead) in one statement, so that
 * the event is never stored without what delivers it, nor anything queued
 * without its event; resolves once that statement committed. Concurrent
 * calls share the statement (see `storeEvents`). With an idempotency key
 * already used in the namespace, stores nothing and returns the first
 * event's id.
 */
export async function insertEvent(db: Db, input: NewEvent): Promise<InsertedEvent> {
  const id = await batcherFor(db).add(input);
  if (id !== null) return { eventId: id, duplicate: false };
  if (input.idempotencyKey === null) throw new Error("event insert returned no row");
  // The key was used before (by an earlier push, one in the same statement, or
  // one that committed while we waited on it).
  const e = eventRecords;
  const [existing] = await db
    .select({ id: e.id })
    .from(e)
    .where(and(eq(e.namespace, input.namespace), eq(e.idempotencyKey, input.idempotencyKey)));
  if (!existing) throw new Error("idempotency key conflict without a stored event");
  return { eventId: existing.id, duplicate: true };
}

/**
 * Events with at most this many webhooks get their deliveries in the
 * statement that stores them; the others get a fan-out job, which creates
 * their deliveries in a statement of its own, so that a push is never held up
 * by a very wide fan-out.
 */
export const MAX_INLINE_FANOUT = 100;
/**
 * Most deliveries one push statement creates: past it, the statement's later
 * events get fan-out jobs too, so that the rows (and the time) of a statement
 * stay bounded whatever its events fan out to.
 */
export const MAX_STATEMENT_DELIVERIES = 5_000;

// Ids are made in `input` (materialised: it is read twice) so that each
// stored row can be matched with the event it came from. The webhooks are
// those active when the statement runs, as a fan-out job would see them.
const storeStatement = preparedStatement<{ ord: number; id: string | null }>(sql`
  with input as (
    select x.ord, uuidv7() as id, x.namespace, x.event, x.payload, x.ttl_seconds, x.metadata, x.idempotency_key,
      x.ordering_key, x.max_attempts
    from json_to_recordset(${sql.placeholder("input")}::json) as x(
      ord int, namespace text, event text, payload text, ttl_seconds int, metadata jsonb, idempotency_key text,
      ordering_key text, max_attempts int
    )
  ), inserted as (
    insert into ${eventRecords}
      (id, namespace, event, payload, ttl_seconds, metadata, idempotency_key, ordering_key, expires_at)
    select id, namespace, event, payload, ttl_seconds, metadata, idempotency_key, ordering_key,
      now() + make_interval(secs => ttl_seconds)
    from input
    order by ord
    on conflict (namespace, idempotency_key) where idempotency_key is not null do nothing
    returning id, namespace, event
  ), matched as (
    -- One more than the inline limit tells which events are over it.
    select inserted.id as event_id, w.id as webhook_id, w.max_attempts
    from inserted
    cross join lateral (${receivingWebhooks("inserted")} limit ${sql.raw(String(MAX_INLINE_FANOUT + 1))}) w
  ), counted as (
    -- Each event's webhooks, and the deliveries of the events up to it (in push order).
    select event_id, n, sum(n) over (order by ord) as total
    from (select event_id, count(*) as n from matched group by event_id) per_event
    join input on input.id = per_event.event_id
  ), wide as (
    -- Too many webhooks, or past the statement's share of deliveries.
    select event_id from counted
    where n > ${sql.raw(String(MAX_INLINE_FANOUT))} or total > ${sql.raw(String(MAX_STATEMENT_DELIVERIES))}
  ), deliveries as (
    insert into ${webhookDeliveries} (webhook_id, event_id, max_attempts, ordering_key, next_attempt_at)
    select matched.webhook_id, matched.event_id, coalesce(matched.max_attempts, input.max_attempts), input.ordering_key,
      now()
    from matched
    join input on input.id = matched.event_id
    where matched.event_id not in (select event_id from wide)
    order by matched.event_id, matched.webhook_id
    returning id, webhook_id
  ), jobs as (
    -- A job for each webhook that got deliveries (it delivers whatever is
    -- due for that webhook), and a fan-out job per wide event; in the order
    -- of their first delivery's id or the event's (uuidv7: the order they
    -- were made in), so that the queue takes them first in, first out.
    ${addJobs(sql`
      select spec from (
        -- As text: PostgreSQL 15 has no min(uuid), and uuids sort as their text.
        select min(id::text) as first, ${deliverJobSpec(sql`webhook_id`)} as spec from deliveries group by webhook_id
        union all
        select event_id::text, ${fanOutJobSpec(sql`event_id`)} from wide
      ) specs order by first`)}
  )
  select input.ord, inserted.id, ${queued("jobs")} as queued
  from input left join inserted on inserted.id = input.id
  order by input.ord
`);

/**
 * Stores the events, creates their deliveries and queues their jobs in one
 * statement (one commit, one NOTIFY). Returns each event's id, or null for
 * one not stored because its idempotency key was taken, in the given order;
 * of two events with the same key, the first is stored. `db` may be a
 * transaction, to store more than one statement takes in one commit.
 */
export async function storeEvents(db: Queryable, inputs: NewEvent[]): Promise<(string | null)[]> {
  const input = inputs.map((e, ord) => ({
    ord,
    namespace: e.namespace,
    event: e.event,
    payload: e.payload,
    ttl_seconds: e.ttlSeconds,
    metadata: e.metadata,
    idempotency_key: e.idempotencyKey,
    ordering_key: e.orderingKey,
    max_attempts: e.maxAttempts,
  }));
  const rows = await storeStatement(db, { input: JSON.stringify(input) });
  return rows.map((row) => row.id);
}

export async function findEvent(db: Db, id: string): Promise<EventRow | undefined> {
  const [row] = await db.select().from(eventRecords).where(eq(eventRecords.id, id));
  return row;
}

/** Events, newest first, before `beforeId`; without their payloads (an empty string). */
export async function listEvents(
  db: Db,
  options: {
    namespace?: string | undefined;
    event?: string | undefined;
    createdAfter?: Date | undefined;
    createdBefore?: Date | undefined;
    beforeId?: string | undefined;
    limit: number;
  },
): Promise<EventRow[]> {
  const e = eventRecords;
  const { payload: _payload, ...columns } = getTableColumns(e);
  const rows = await db
    .select(columns)
    .from(e)
    .where(
      and(
        options.namespace === undefined ? undefined : eq(e.namespace, options.namespace),
        options.event === undefined ? undefined : eq(e.event, options.event),
        options.createdAfter === undefined
          ? undefined
          : and(gte(e.id, uuidv7Floor(options.createdAfter)), gte(e.createdAt, options.createdAfter)),
        options.createdBefore === undefined ? undefined : lt(e.createdAt, options.createdBefore),
        options.beforeId === undefined ? undefined : lt(e.id, options.beforeId),
      ),
    )
    .orderBy(desc(e.id))
    .limit(options.limit);
  return rows.map((row) => ({ ...row, payload: "" }));
}
