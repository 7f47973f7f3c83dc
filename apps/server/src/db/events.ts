import { and, desc, eq, getTableColumns, gte, lt, sql } from "drizzle-orm";
import { IdempotencyKeyConflictError } from "../errors.js";
import { createBatcher } from "./batcher.js";
import { perDatabase, type Db, type Queryable } from "./client.js";
import { preparedStatement } from "./prepared.js";
import { eventRecords, pushSettings } from "./schema.js";
import { uuidv7Floor } from "./ids.js";

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

/** What the push statement made of one push (see httpqueue_store_events in the migrations). */
export interface StoredEvent {
  /** The new event's id; null when the push's idempotency key was held. */
  id: string | null;
  /** The event that holds the key, when nothing was stored. */
  existingId: string | null;
  /** How that event differs from the push; null when the push repeats it. */
  mismatch: "event" | "payload" | null;
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
 * used in the namespace within the idempotency window (by an earlier push,
 * one in the same statement, or one that committed while we waited on it),
 * stores nothing: returns that event's id when the push repeats its name and
 * payload, and throws an IdempotencyKeyConflictError when it does not.
 */
export async function insertEvent(db: Db, input: NewEvent): Promise<InsertedEvent> {
  const { id, existingId, mismatch } = await batcherFor(db).add(input);
  if (id !== null) return { eventId: id, duplicate: false };
  if (existingId === null) {
    // The key's event went (retention, or a push that gave the key up after the window) between the insert and
    // the read that followed it: nothing was stored, and a retry finds the key free or held. A serialization
    // failure, as httpqueue.push_event raises (ABORTED).
    throw Object.assign(new Error("the idempotency key's event went while the push ran: retry"), { code: "40001" });
  }
  if (mismatch !== null) {
    throw new IdempotencyKeyConflictError(input.idempotencyKey ?? "", input.namespace, existingId, mismatch);
  }
  return { eventId: existingId, duplicate: true };
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

// The push itself is httpqueue_store_events (in the migrations), which
// httpqueue.push_event, the push from SQL, calls too: one definition of
// what a push stores and queues.
const storeStatement = preparedStatement<{
  ord: number;
  id: string | null;
  existing_id: string | null;
  mismatch: "event" | "payload" | null;
}>(sql`
  select ord, id, existing_id, mismatch from httpqueue_store_events(
    ${sql.placeholder("input")}::json,
    ${sql.raw(String(MAX_INLINE_FANOUT))},
    ${sql.raw(String(MAX_STATEMENT_DELIVERIES))}
  )
  order by ord
`);

/**
 * Stores the events, creates their deliveries and queues their jobs in one
 * statement (one commit, one NOTIFY). Returns, in the given order, each
 * event's id, or for one not stored because its idempotency key was held
 * within the window (of push_settings), the event holding it and whether it
 * differs; of two events with the same key, the first is stored. `db` may be
 * a transaction, to store more than one statement takes in one commit.
 */
export async function storeEvents(db: Queryable, inputs: NewEvent[]): Promise<StoredEvent[]> {
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
  return rows.map((row) => ({ id: row.id, existingId: row.existing_id, mismatch: row.mismatch }));
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

/**
 * Records the settings a push made in SQL (httpqueue.push_event) follows, and
 * the idempotency window every push does: the server's.
 */
export async function savePushSettings(
  db: Db,
  settings: {
    defaultTtlSeconds: number;
    maxTtlSeconds: number;
    maxPayloadBytes: number;
    maxAttempts: number;
    idempotencyWindowSeconds: number;
  },
): Promise<void> {
  await db
    .insert(pushSettings)
    .values({ id: 1, ...settings })
    .onConflictDoUpdate({ target: pushSettings.id, set: { ...settings, updatedAt: sql`now()` } });
}
