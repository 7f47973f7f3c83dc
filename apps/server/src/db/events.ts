import { and, eq, sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { eventRecords } from "./schema.js";
import { FANOUT_TASK } from "../delivery/task-names.js";

export type EventRow = typeof eventRecords.$inferSelect;

export interface NewEvent {
  namespace: string;
  event: string;
  payload: string;
  ttlSeconds: number;
  metadata: Record<string, string>;
  idempotencyKey: string | null;
}

/**
 * Stores the event and queues its fan-out job in one statement, so that the
 * event is never stored without its job nor the job queued without its event.
 * With an idempotency key already used in the namespace, stores nothing and
 * returns the first event's id.
 */
export async function insertEvent(db: Db, input: NewEvent): Promise<{ eventId: string; duplicate: boolean }> {
  const e = eventRecords;
  const inserted = await db.execute<{ id: string }>(sql`
    with inserted as (
      insert into ${e} (namespace, event, payload, ttl_seconds, metadata, idempotency_key, expires_at)
      values (
        ${input.namespace}, ${input.event}, ${input.payload}, ${input.ttlSeconds},
        ${JSON.stringify(input.metadata)}::jsonb, ${input.idempotencyKey},
        now() + make_interval(secs => ${input.ttlSeconds}::int)
      )
      on conflict (namespace, idempotency_key) where idempotency_key is not null do nothing
      returning id
    )
    select id, graphile_worker.add_job(${FANOUT_TASK}::text, json_build_object('eventId', id)) is not null as queued
    from inserted
  `);
  const first = inserted[0];
  if (first) return { eventId: first.id, duplicate: false };
  if (input.idempotencyKey === null) throw new Error("event insert returned no row");
  // The key was used before (or by a push that committed while we waited on it).
  const [existing] = await db
    .select({ id: e.id })
    .from(e)
    .where(and(eq(e.namespace, input.namespace), eq(e.idempotencyKey, input.idempotencyKey)));
  if (!existing) throw new Error("idempotency key conflict without a stored event");
  return { eventId: existing.id, duplicate: true };
}

export async function findEvent(db: Db, id: string): Promise<EventRow | undefined> {
  const [row] = await db.select().from(eventRecords).where(eq(eventRecords.id, id));
  return row;
}
