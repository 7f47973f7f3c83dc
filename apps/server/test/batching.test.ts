import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { TestDatabase } from "@httpqueue/testkit";
import { loadDelivery, recordAttempt, type AttemptRecord } from "../src/db/attempts.js";
import { createDatabase, type Db } from "../src/db/client.js";
import { fanOut } from "../src/db/deliveries.js";
import { insertEvent, MAX_INLINE_FANOUT, type NewEvent } from "../src/db/events.js";
import { createMigratedDatabase } from "./helpers/server.js";

// The statements that concurrent callers share (db/batcher.ts), against the
// real database: every caller gets its own answer, as if it ran alone.

const event = (over: Partial<NewEvent> = {}): NewEvent => ({
  namespace: "batch",
  event: "e",
  payload: "{}",
  ttlSeconds: 3600,
  metadata: {},
  idempotencyKey: null,
  maxAttempts: 7,
  ...over,
});

describe("statements shared by concurrent callers", () => {
  let database: TestDatabase;
  let db: Db;
  before(async () => {
    database = await createMigratedDatabase();
    db = createDatabase({ url: database.url, poolSize: 4 });
  });
  after(async () => {
    await db.$client.end({ timeout: 5 });
    await database.drop();
  });

  const addWebhooks = async (eventName: string, count: number, active = true) => {
    await database.sql`
      insert into webhook_registrations (namespace, event, url, signing_secret, active)
      select 'batch', ${eventName}, 'http://127.0.0.1:1/' || g, 'whsec_x', ${active}
      from generate_series(1, ${count}::int) g`;
  };

  /** Per event: its deliveries, their largest max_attempts, and how many have a first attempt's job. */
  const deliveriesOf = async (eventIds: string[]) => {
    const rows = await database.sql<{ event_id: string; n: number; jobs: number; max_attempts: number }[]>`
      select d.event_id, count(*)::int as n, max(d.max_attempts) as max_attempts,
        count(j.id)::int as jobs
      from webhook_deliveries d
      left join graphile_worker.jobs j on j.key = 'httpqueue.deliver:' || d.id || ':1'
      where d.event_id = any(${eventIds})
      group by d.event_id`;
    return new Map(rows.map((r) => [r.event_id, r]));
  };

  const fanOutJobs = async (eventIds: string[]) => {
    const rows = await database.sql<{ event_id: string }[]>`
      select j.payload->>'eventId' as event_id
      from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
      where t.identifier = 'httpqueue.fanout' and j.payload->>'eventId' = any(${eventIds})`;
    return rows.map((r) => r.event_id);
  };

  it("stores concurrent pushes in shared statements, each with its payload", async () => {
    const pushes = Array.from({ length: 300 }, (_, i) =>
      event({ event: "many", payload: `{"n":${i}}`, metadata: { n: String(i) } }),
    );
    const results = await Promise.all(pushes.map((p) => insertEvent(db, p)));
    const ids = results.map((r) => r.eventId);
    assert.equal(new Set(ids).size, 300, "every push got an event of its own");
    assert.ok(results.every((r) => !r.duplicate));

    const rows = await database.sql<{ id: string; payload: string; n: string; created_at: Date }[]>`
      select id, payload, metadata->>'n' as n, created_at from event_records where id = any(${ids})`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    ids.forEach((id, i) => {
      assert.equal(byId.get(id)?.payload, `{"n":${i}}`, "each id is the event that was pushed with it");
      assert.equal(byId.get(id)?.n, String(i));
    });
    // Rows of one statement share its transaction's start time.
    const statements = new Set(rows.map((r) => r.created_at.getTime())).size;
    assert.ok(statements < 300, `300 pushes made ${statements} statements: none were shared`);
    assert.deepEqual(await fanOutJobs(ids), [], "no webhook, no fan-out job");
    assert.equal((await deliveriesOf(ids)).size, 0, "no webhook, no delivery");
  });

  it("answers concurrent pushes with one idempotency key with one event, whatever statement they share", async () => {
    await addWebhooks("idem", 1);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        insertEvent(db, event({ event: "idem", idempotencyKey: "same", payload: `{"i":${i}}` })),
      ),
    );
    const stored = results.filter((r) => !r.duplicate);
    assert.equal(stored.length, 1, "exactly one push stored the event");
    assert.ok(
      results.every((r) => r.eventId === stored[0]?.eventId),
      "the others got its id",
    );
    const [row] = await database.sql<{ n: number }[]>`
      select count(*)::int as n from event_records where namespace = 'batch' and idempotency_key = 'same'`;
    assert.equal(row?.n, 1);
    const deliveries = await deliveriesOf([stored[0]!.eventId]);
    assert.equal(deliveries.get(stored[0]!.eventId)?.n, 1, "one delivery, not twenty");
  });

  it("fails only the push that the database refuses; the others in its statement are stored", async () => {
    const results = await Promise.allSettled([
      insertEvent(db, event({ event: "mixed", payload: '{"ok":1}' })),
      // Beyond PostgreSQL's integer: the shared statement fails, and each push runs again alone.
      insertEvent(db, event({ event: "mixed", payload: '{"bad":1}', ttlSeconds: 2 ** 40 })),
      insertEvent(db, event({ event: "mixed", payload: '{"ok":2}' })),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    const rows = await database.sql<{ payload: string }[]>`
      select payload from event_records where event = 'mixed' order by payload`;
    assert.deepEqual(
      rows.map((r) => r.payload),
      ['{"ok":1}', '{"ok":2}'],
      "each good push stored once",
    );
  });

  it("creates each pushed event's deliveries and jobs in its statement, and a later fan-out creates nothing", async () => {
    await addWebhooks("fan", 2);
    await addWebhooks("fan", 1, false);
    const events = await Promise.all(Array.from({ length: 50 }, () => insertEvent(db, event({ event: "fan" }))));
    const ids = events.map((e) => e.eventId);
    assert.deepEqual(await fanOutJobs(ids), [], "no fan-out job for a narrow fan-out");

    const deliveries = await deliveriesOf(ids);
    assert.equal(deliveries.size, 50);
    for (const row of deliveries.values()) {
      assert.equal(row.n, 2, "a delivery per active webhook");
      assert.equal(row.jobs, 2, "a delivery job per delivery");
      assert.equal(row.max_attempts, 7);
    }
    const again = await Promise.all([...ids, ...ids].map((id) => fanOut(db, id, 7)));
    assert.deepEqual(again, Array<number>(100).fill(0), "nothing twice, even for the same event in one batch");
  });

  it(`leaves a fan-out wider than ${MAX_INLINE_FANOUT} webhooks to a fan-out job, which creates every delivery once`, async () => {
    await addWebhooks("wide", MAX_INLINE_FANOUT + 1);
    await addWebhooks("narrow", 1);
    const [wide, narrow] = await Promise.all([
      insertEvent(db, event({ event: "wide" })),
      insertEvent(db, event({ event: "narrow" })),
    ]);
    const ids = [wide.eventId, narrow.eventId];
    assert.deepEqual(await fanOutJobs(ids), [wide.eventId], "a fan-out job for the wide event only");
    assert.equal((await deliveriesOf(ids)).get(narrow.eventId)?.n, 1, "the narrow one's delivery is made");
    assert.equal((await deliveriesOf(ids)).get(wide.eventId), undefined, "the wide one's are left to its job");

    assert.deepEqual(await Promise.all([fanOut(db, wide.eventId, 7), fanOut(db, wide.eventId, 7)]), [
      MAX_INLINE_FANOUT + 1,
      0,
    ]);
    const row = (await deliveriesOf([wide.eventId])).get(wide.eventId);
    assert.deepEqual([row?.n, row?.jobs], [MAX_INLINE_FANOUT + 1, MAX_INLINE_FANOUT + 1]);
  });

  let newDeliveryEvents = 0;
  /** `count` pending deliveries of one new event, each to a webhook of its own. */
  async function newDeliveries(count: number): Promise<string[]> {
    const name = `attempts-${++newDeliveryEvents}`;
    const { eventId } = await insertEvent(db, event({ event: name, payload: '{"a":1}' }));
    const rows = await database.sql<{ id: string }[]>`
      with w as (
        insert into webhook_registrations (namespace, event, url, signing_secret)
        select 'batch', ${name}, 'http://127.0.0.1:1/' || g, 'whsec_x' from generate_series(1, ${count}::int) g
        returning id
      )
      insert into webhook_deliveries (webhook_id, event_id, max_attempts)
      select id, ${eventId}, 10 from w
      returning id`;
    return rows.map((r) => r.id);
  }

  const attempt = (deliveryId: string, over: Partial<AttemptRecord> = {}): AttemptRecord => ({
    deliveryId,
    attemptNumber: 1,
    startedAt: new Date("2026-01-01T00:00:00.123Z"),
    durationMs: 12,
    responseCode: 200,
    responseBody: "ok",
    errorMessage: null,
    status: "succeeded",
    nextAttemptAt: null,
    ...over,
  });

  it("loads concurrent deliveries, each with its own event and webhook", async () => {
    const ids = await newDeliveries(20);
    const unknown = "00000000-0000-7000-8000-000000000000";
    const loaded = await Promise.all([...ids, unknown].map((id) => loadDelivery(db, id)));
    assert.equal(loaded.at(-1), undefined, "an unknown id loads nothing");
    ids.forEach((id, i) => {
      const d = loaded[i];
      assert.equal(d?.id, id);
      assert.equal(d.status, "pending");
      assert.equal(d.payload, '{"a":1}');
      assert.match(d.url, /^http:\/\/127\.0\.0\.1:1\//);
      assert.ok(d.expiresAt instanceof Date);
    });
  });

  it("records concurrent attempts, each with its delivery's update and, when retrying, its next job", async () => {
    const ids = await newDeliveries(30);
    const next = new Date(Date.now() + 3_600_000);
    const results = await Promise.all(
      ids.map((id, i) =>
        recordAttempt(
          db,
          i % 2 === 0
            ? attempt(id)
            : attempt(id, { status: "retrying", responseCode: 503, errorMessage: "HTTP 503", nextAttemptAt: next }),
        ),
      ),
    );
    assert.deepEqual(results, Array<boolean>(30).fill(true));

    const rows = await database.sql<
      {
        id: string;
        status: string;
        attempt_count: number;
        response_code: number;
        completed: boolean;
        attempts: number;
        run_at: Date | null;
      }[]
    >`
      select d.id, d.status, d.attempt_count, d.response_code, d.completed_at is not null as completed,
        (select count(*)::int from delivery_attempts a where a.delivery_id = d.id) as attempts,
        (select run_at from graphile_worker.jobs j where j.key like 'httpqueue.deliver:' || d.id || ':%') as run_at
      from webhook_deliveries d where d.id = any(${ids})`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    ids.forEach((id, i) => {
      const row = byId.get(id);
      assert.equal(row?.attempt_count, 1);
      assert.equal(row.attempts, 1, "the attempt is recorded");
      if (i % 2 === 0) {
        assert.deepEqual([row.status, row.response_code, row.completed, row.run_at], ["succeeded", 200, true, null]);
      } else {
        assert.deepEqual([row.status, row.response_code, row.completed], ["retrying", 503, false]);
        assert.equal(row.run_at?.getTime(), next.getTime(), "the next attempt is queued for its time");
      }
    });
  });

  it("records a late attempt without updating a delivery that moved on, and two attempts of one delivery in order", async () => {
    const [moved, twice] = await newDeliveries(2);
    await database.sql`update webhook_deliveries set status = 'cancelled' where id = ${moved!}`;
    const next = new Date(Date.now() + 3_600_000);
    const [late, first, second] = await Promise.all([
      recordAttempt(db, attempt(moved!)),
      recordAttempt(db, attempt(twice!, { status: "retrying", responseCode: 500, nextAttemptAt: next })),
      recordAttempt(db, attempt(twice!, { attemptNumber: 2 })),
    ]);
    assert.equal(late, false, "a cancelled delivery stays cancelled");
    assert.equal(first, true);
    assert.equal(second, true, "the second attempt saw the first one's update");
    const rows = await database.sql<{ delivery_id: string; attempt_number: number }[]>`
      select delivery_id, attempt_number from delivery_attempts where delivery_id in (${moved!}, ${twice!})
      order by delivery_id, attempt_number`;
    assert.equal(rows.filter((r) => r.delivery_id === moved).length, 1, "the late attempt is still recorded");
    assert.deepEqual(
      rows.filter((r) => r.delivery_id === twice).map((r) => r.attempt_number),
      [1, 2],
    );
    const [row] = await database.sql<{ status: string; attempt_count: number }[]>`
      select status, attempt_count from webhook_deliveries where id = ${twice!}`;
    assert.deepEqual(row, { status: "succeeded", attempt_count: 2 });
  });
});
