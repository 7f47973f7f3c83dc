import { and, asc, desc, eq, gt, lt, sql } from "drizzle-orm";
import { createBatcher } from "./batcher.js";
import { perDatabase, type Db } from "./client.js";
import { preparedStatement } from "./prepared.js";
import { eventRecords, webhookDeliveries } from "./schema.js";
import { addJobs, deliverJobSpec, queued } from "./jobs.js";

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;

/**
 * Fan-outs of concurrent jobs share a statement: each queues delivery jobs,
 * and PostgreSQL commits transactions that NOTIFY (as queueing a job does)
 * one at a time. See db/batcher.ts.
 */
const MAX_FANOUT_BATCH = 64;
const MAX_CONCURRENT_FANOUTS = 2;

interface FanOutItem {
  eventId: string;
  maxAttempts: number;
}

const fanOutBatcherFor = perDatabase((db) =>
  createBatcher({
    run: (items: FanOutItem[]) => fanOutEvents(db, items),
    maxBatchSize: MAX_FANOUT_BATCH,
    maxConcurrent: MAX_CONCURRENT_FANOUTS,
    key: (item) => item.eventId,
  }),
);

/**
 * Creates one delivery per active webhook of the event's namespace/event and
 * queues one job each, in one statement; resolves once it committed. Running
 * it again for the same event creates nothing twice. Concurrent calls share
 * the statement (see `fanOutEvents`). Returns how many deliveries were created.
 */
export function fanOut(db: Db, eventId: string, maxAttempts: number): Promise<number> {
  return fanOutBatcherFor(db).add({ eventId, maxAttempts });
}

const fanOutStatement = preparedStatement<{ ord: number; created: number }>(sql`
  with input as (
    select x.ord, x.event_id, x.max_attempts
    from json_to_recordset(${sql.placeholder("input")}::json) as x(ord int, event_id uuid, max_attempts int)
  ), inserted as (
    -- One lookup per input row, by primary key, then by the fan-out index:
    -- the planner guesses 100 input rows whatever the batch holds, and would
    -- rather scan a small table whole. OFFSET 0 keeps it from flattening the
    -- lateral subqueries into such joins.
    insert into ${webhookDeliveries} (webhook_id, event_id, max_attempts, ordering_key, next_attempt_at)
    select w.id, e.id, coalesce(w.max_attempts, input.max_attempts), e.ordering_key, now()
    from input
    cross join lateral (
      -- Held against retention until this commits; one whose payload it removed goes nowhere.
      select id, namespace, event, payload, ordering_key from ${eventRecords}
      where id = input.event_id and payload_removed_at is null offset 0 for share
    ) e
    -- The webhooks it goes to (see the migrations): the same as a push's.
    cross join lateral (select * from httpqueue_receiving_webhooks(e.namespace, e.event, e.payload) offset 0) w
    order by input.ord, w.id
    on conflict (event_id, webhook_id) do nothing
    returning event_id, webhook_id
  ), jobs as (
    ${addJobs(sql`select ${deliverJobSpec(sql`webhook_id`)} as spec from inserted group by webhook_id`)}
  )
  select input.ord, coalesce(created.n, 0)::int as created, ${queued("jobs")} as queued
  from input
  left join (select event_id, count(*) as n from inserted group by event_id) created using (event_id)
  order by input.ord
`);

/**
 * `fanOut` for several events in one statement (one commit, one NOTIFY).
 * Returns how many deliveries each event got, in the given order.
 */
export async function fanOutEvents(db: Db, items: FanOutItem[]): Promise<number[]> {
  const input = items.map((item, ord) => ({ ord, event_id: item.eventId, max_attempts: item.maxAttempts }));
  const rows = await fanOutStatement(db, { input: JSON.stringify(input) });
  return rows.map((row) => row.created);
}

/** The webhook of a delivery; undefined for an unknown id. */
export async function webhookOfDelivery(db: Db, deliveryId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ webhookId: webhookDeliveries.webhookId })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, deliveryId));
  return row?.webhookId;
}

/** The number of deliveries per status of a webhook or of an event. */
export async function countDeliveriesByStatus(db: Db, of: { webhookId: string } | { eventId: string }) {
  const d = webhookDeliveries;
  return db
    .select({ status: d.status, count: sql<number>`count(*)::int` })
    .from(d)
    .where("webhookId" in of ? eq(d.webhookId, of.webhookId) : eq(d.eventId, of.eventId))
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

/** An event's deliveries, oldest first, after `afterId`. */
export async function listEventDeliveries(
  db: Db,
  eventId: string,
  options: { afterId?: string | undefined; limit: number },
): Promise<DeliveryRow[]> {
  const d = webhookDeliveries;
  return db
    .select()
    .from(d)
    .where(and(eq(d.eventId, eventId), options.afterId ? gt(d.id, options.afterId) : undefined))
    .orderBy(asc(d.id))
    .limit(options.limit);
}
