import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { TestDatabase } from "@httpqueue/testkit";
import { recordOutcome, type AttemptRecord } from "../src/db/attempts.js";
import { createDatabase, type Db } from "../src/db/client.js";
import { fanOut } from "../src/db/deliveries.js";
import {
  insertEvent,
  MAX_INLINE_FANOUT,
  MAX_STATEMENT_DELIVERIES,
  storeEvents,
  type NewEvent,
} from "../src/db/events.js";
import { fetchDueDeliveries, finishRunner, startRunner, type PaceRow } from "../src/db/runners.js";
import { IdempotencyKeyConflictError } from "../src/errors.js";
import { createMigratedDatabase } from "./helpers/server.js";

// The statements that concurrent callers share (db/batcher.ts), against the
// real database: every caller gets its own answer, as if it ran alone.

const NO_PACE: PaceRow = { pausedUntil: null, pace: null, nextSendAt: null };

const event = (over: Partial<NewEvent> = {}): NewEvent => ({
  namespace: "batch",
  event: "e",
  payload: "{}",
  ttlSeconds: 3600,
  metadata: {},
  idempotencyKey: null,
  orderingKey: "",
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

  /** Per event: its deliveries, their largest max_attempts, and how many are due now. */
  const deliveriesOf = async (eventIds: string[]) => {
    const rows = await database.sql<{ event_id: string; n: number; due: number; max_attempts: number }[]>`
      select d.event_id, count(*)::int as n, max(d.max_attempts) as max_attempts,
        count(*) filter (where d.next_attempt_at <= now())::int as due
      from webhook_deliveries d
      where d.event_id = any(${eventIds})
      group by d.event_id`;
    return new Map(rows.map((r) => [r.event_id, r]));
  };

  /** Delivery jobs queued for each of the webhooks of these events. */
  const deliverJobs = async (eventIds: string[]) => {
    const rows = await database.sql<{ webhook_id: string; jobs: number }[]>`
      select w.webhook_id, count(j.id)::int as jobs
      from (select distinct webhook_id from webhook_deliveries where event_id = any(${eventIds})) w
      left join graphile_worker._private_jobs j on j.payload->>'webhookId' = w.webhook_id::text
      group by w.webhook_id`;
    return rows;
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
        // The same JSON written three ways: the same payload.
        insertEvent(
          db,
          event({ event: "idem", idempotencyKey: "same", payload: ['{"i":1}', '{ "i": 1 }', '{"i":1.0}'][i % 3] }),
        ),
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

  it("refuses only the push whose key another payload holds; the others in its statement are answered", async () => {
    const results = await Promise.allSettled([
      insertEvent(db, event({ event: "keys", idempotencyKey: "k-a", payload: '{"a":1}' })),
      insertEvent(db, event({ event: "keys", idempotencyKey: "k-a", payload: '{"a":2}' })),
      insertEvent(db, event({ event: "keys", idempotencyKey: "k-b", payload: '{"b":1}' })),
      insertEvent(db, event({ event: "keys", idempotencyKey: "k-a", payload: '{"a":1}' })),
      insertEvent(db, event({ event: "other", idempotencyKey: "k-b", payload: '{"b":1}' })),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled", "fulfilled", "rejected"],
    );
    const [first, payload, second, repeat, name] = results;
    assert.ok(first.status === "fulfilled" && repeat.status === "fulfilled" && second.status === "fulfilled");
    assert.deepEqual(repeat.value, { eventId: first.value.eventId, duplicate: true });
    assert.equal(second.value.duplicate, false);
    for (const [result, differs, holder] of [
      [payload, "payload", first.value.eventId],
      [name, "event", second.value.eventId],
    ] as const) {
      assert.ok(result.status === "rejected");
      assert.ok(result.reason instanceof IdempotencyKeyConflictError, String(result.reason));
      assert.equal(result.reason.differs, differs);
      assert.equal(result.reason.eventId, holder);
    }
    const rows = await database.sql<{ n: number }[]>`
      select count(*)::int as n from event_records where namespace = 'batch' and event in ('keys', 'other')`;
    assert.equal(rows[0]?.n, 2, "one event per key");
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
      assert.equal(row.due, 2, "due at once");
      assert.equal(row.max_attempts, 7);
    }
    const jobs = await deliverJobs(ids);
    assert.equal(jobs.length, 2);
    for (const { jobs: n } of jobs) {
      // One job per webhook and statement: fewer than one per delivery, since the pushes shared statements.
      assert.ok(n >= 1 && n < 50, `${n} jobs for a webhook's 50 deliveries`);
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
    assert.deepEqual([row?.n, row?.due], [MAX_INLINE_FANOUT + 1, MAX_INLINE_FANOUT + 1]);
    const jobs = await deliverJobs([wide.eventId]);
    assert.equal(jobs.length, MAX_INLINE_FANOUT + 1);
    assert.ok(
      jobs.every((j) => j.jobs === 1),
      "a job for each webhook",
    );
  });

  it(`creates at most ${MAX_STATEMENT_DELIVERIES} deliveries in one push statement; later events get fan-out jobs`, async () => {
    const perEvent = 60;
    await addWebhooks("bound", perEvent);
    const inline = Math.floor(MAX_STATEMENT_DELIVERIES / perEvent);
    const ids = (
      await storeEvents(
        db,
        Array.from({ length: inline + 10 }, () => event({ event: "bound" })),
      )
    ).map((stored) => stored.id ?? "");
    const deliveries = await deliveriesOf(ids);
    assert.equal(deliveries.size, inline, "the events up to the bound got their deliveries in the statement");
    assert.ok([...deliveries.values()].every((row) => row.n === perEvent));
    assert.deepEqual((await fanOutJobs(ids)).sort(), ids.slice(inline).sort(), "the later ones got fan-out jobs");
    for (const id of ids.slice(inline)) assert.equal(await fanOut(db, id, 7), perEvent);
  });

  let newDeliveryEvents = 0;
  /** `count` pending deliveries of one new event, due now, each to a webhook of its own (or all to one). */
  async function newDeliveries(count: number, oneWebhook = false): Promise<string[]> {
    const name = `attempts-${++newDeliveryEvents}`;
    const rows = await database.sql<{ id: string }[]>`
      with e as (
        insert into event_records (namespace, event, payload, ttl_seconds, expires_at)
        select 'batch', ${name}, '{"a":1}', 3600, now() + interval '1 hour' from generate_series(1, ${oneWebhook ? count : 1}::int)
        returning id
      ), w as (
        insert into webhook_registrations (namespace, event, url, signing_secret)
        select 'batch', ${name}, 'http://127.0.0.1:1/' || g, 'whsec_x' from generate_series(1, ${oneWebhook ? 1 : count}::int) g
        returning id
      )
      insert into webhook_deliveries (webhook_id, event_id, max_attempts, next_attempt_at)
      select w.id, e.id, 10, now() from w, e
      returning id`;
    return rows.map((r) => r.id);
  }

  const webhookOf = async (deliveryId: string) => {
    const [row] = await database.sql<
      { webhook_id: string }[]
    >`select webhook_id from webhook_deliveries where id = ${deliveryId}`;
    return row!.webhook_id;
  };

  const attempt = (deliveryId: string, over: Partial<AttemptRecord> = {}): AttemptRecord => ({
    deliveryId,
    resends: 0,
    attemptNumber: 1,
    startedAt: new Date("2026-01-01T00:00:00.123Z"),
    durationMs: 12,
    responseCode: 200,
    responseBody: "ok",
    errorMessage: null,
    request: { method: "POST", url: "http://127.0.0.1:9/hook", headers: { "webhook-id": deliveryId } },
    responseHeaders: { "content-type": "text/plain" },
    status: "succeeded",
    nextAttemptAt: null,
    ...over,
  });

  it("lets one server at a time deliver to a webhook, with its first page of due deliveries", async () => {
    const ids = await newDeliveries(5, true);
    const webhookId = await webhookOf(ids[0]!);
    const [a, b] = await Promise.all([
      startRunner(db, { webhookId, owner: "pool-a", limit: 3 }),
      startRunner(db, { webhookId, owner: "pool-b", limit: 3 }),
    ]);
    assert.ok(a === undefined || b === undefined, "only one of two servers takes it");
    const taken = (a ?? b)?.due;
    assert.ok(taken);
    assert.equal(taken.length, 3, "a page of due deliveries");
    assert.ok(taken.every((d) => ids.includes(d.id) && d.payload === '{"a":1}' && d.webhookId === webhookId));
    const owner = a === undefined ? "pool-b" : "pool-a";
    assert.ok(await startRunner(db, { webhookId, owner, limit: 3 }), "the owner may take it again");

    const rest = await fetchDueDeliveries(db, { webhookId, limit: 10, exclude: taken.map((d) => d.id) });
    assert.deepEqual(rest.map((d) => d.id).sort(), ids.filter((id) => !taken.some((d) => d.id === id)).sort());
  });

  it("a server taking a webhook as another lets it go starts from the pace it left, not from what was there before", async () => {
    const ids = await newDeliveries(2, true);
    const webhookId = await webhookOf(ids[0]!);
    assert.ok(await startRunner(db, { webhookId, owner: "pool-a", limit: 10 }));
    // pool-a lets go in a transaction that has not committed yet, leaving its pace on the row
    // (as its finishing statement does); pool-b's start waits for the runner row meanwhile.
    const nextSendAt = Date.now() + 60_000;
    const recentSends = [Date.now() - 500, Date.now() - 100];
    let releasing: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (releasing = resolve));
    const letGo = database.sql.begin(async (tx) => {
      await tx`delete from webhook_runners where webhook_id = ${webhookId}`;
      await tx`update webhook_registrations set next_send_at = ${new Date(nextSendAt)},
        recent_sends = ${recentSends}::float8[] where id = ${webhookId}`;
      await released;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const taking = startRunner(db, { webhookId, owner: "pool-b", limit: 10 });
    await new Promise((resolve) => setTimeout(resolve, 300)); // pool-b's statement is waiting now
    releasing();
    await letGo;
    const taken = await taking;
    assert.ok(taken, "pool-b takes the webhook once pool-a let go");
    assert.equal(taken.pace.nextSendAt, nextSendAt, "the next free slot pool-a left");
    assert.deepEqual(taken.pace.recentSends, recentSends, "the start times of pool-a's last second");
  });

  it("keeps the webhook while deliveries are due; on letting go, schedules its next due delivery", async () => {
    const ids = await newDeliveries(2, true);
    const webhookId = await webhookOf(ids[0]!);
    assert.ok(await startRunner(db, { webhookId, owner: "pool-a", limit: 10 }));
    assert.deepEqual(
      await finishRunner(db, { webhookId, owner: "pool-a", mode: "done", pace: NO_PACE, paused: false }),
      {
        released: false,
      },
    );

    const later = new Date(Date.now() + 3_600_000);
    await recordOutcome(db, attempt(ids[0]!));
    await recordOutcome(db, attempt(ids[1]!, { status: "retrying", responseCode: 503, nextAttemptAt: later }));
    assert.deepEqual(
      await finishRunner(db, { webhookId, owner: "pool-a", mode: "done", pace: NO_PACE, paused: false }),
      {
        released: true,
      },
    );
    const [runner] = await database.sql`select 1 from webhook_runners where webhook_id = ${webhookId}`;
    assert.equal(runner, undefined, "let go");
    const wake = await database.sql<{ run_at: Date; key: string }[]>`
      select run_at, key from graphile_worker.jobs where key like ${`httpqueue.deliver:${webhookId}@%`}`;
    assert.equal(wake.length, 1, "a wake-up for the retry");
    assert.equal(wake[0]?.run_at.getTime(), later.getTime());
    assert.equal(await fetchDueDeliveries(db, { webhookId, limit: 10, exclude: [] }).then((d) => d.length), 0);
  });

  it("keeps each webhook's failure streak; a success ends an announced one, its recovery due even if it fails again", async () => {
    const ids = await newDeliveries(3, true);
    const webhookId = await webhookOf(ids[0]!);
    const streak = async () => {
      const [row] = await database.sql<
        { since: Date | null; failures: number; noticed: Date | null; recovered: Date | null }[]
      >`select failing_since as since, failure_count as failures, failing_noticed_at as noticed, recovered_at as recovered
        from webhook_registrations where id = ${webhookId}`;
      return row!;
    };
    const failed = (id: string, startedAt: Date) =>
      attempt(id, {
        startedAt,
        status: "retrying",
        responseCode: 500,
        errorMessage: "receiver answered HTTP 500",
        nextAttemptAt: new Date(Date.now() + 3_600_000),
      });
    const t = Date.parse("2026-01-01T00:00:00Z");
    await Promise.all([
      recordOutcome(db, failed(ids[0]!, new Date(t))),
      recordOutcome(db, failed(ids[1]!, new Date(t + 1000))),
    ]);
    assert.deepEqual(await streak(), { since: new Date(t), failures: 2, noticed: null, recovered: null });

    await database.sql`update webhook_registrations set failing_noticed_at = now() where id = ${webhookId}`;
    // A success, then a failure that starts a new streak (before any sweep has looked).
    await Promise.all([
      recordOutcome(db, attempt(ids[2]!, { startedAt: new Date(t + 2000) })),
      recordOutcome(db, { ...failed(ids[0]!, new Date(t + 3000)), attemptNumber: 2 }),
    ]);
    const after = await streak();
    assert.deepEqual([after.since, after.failures, after.noticed], [new Date(t + 3000), 1, null]);
    assert.ok(after.recovered, "the announced streak's recovery is due");
  });

  it("yielding lets go whatever is due, with a job due now; a row that is not ours counts as let go", async () => {
    const ids = await newDeliveries(1, true);
    const webhookId = await webhookOf(ids[0]!);
    assert.ok(await startRunner(db, { webhookId, owner: "pool-a", limit: 10 }));
    assert.deepEqual(
      await finishRunner(db, { webhookId, owner: "pool-a", mode: "yield", pace: NO_PACE, paused: false }),
      {
        released: true,
      },
    );
    const [job] = await database.sql<{ due: boolean }[]>`
      select j.run_at <= now() as due from graphile_worker._private_jobs j where j.payload->>'webhookId' = ${webhookId}`;
    assert.equal(job?.due, true);
    assert.deepEqual(
      await finishRunner(db, { webhookId, owner: "pool-gone", mode: "done", pace: NO_PACE, paused: false }),
      {
        released: true,
      },
    );
  });

  it("starts concurrent runners in shared statements, each with its own page", async () => {
    const ids = await newDeliveries(20);
    const webhooks = await Promise.all(ids.map(webhookOf));
    const pages = await Promise.all(
      webhooks.map((webhookId) => startRunner(db, { webhookId, owner: "pool-c", limit: 5 })),
    );
    pages.forEach((page, i) => {
      assert.deepEqual(
        page?.due.map((d) => d.id),
        [ids[i]],
      );
    });
  });

  it("records concurrent outcomes, each with its delivery's update and, when retrying, when it is due again", async () => {
    const ids = await newDeliveries(30);
    const next = new Date(Date.now() + 3_600_000);
    const results = await Promise.all(
      ids.map((id, i) =>
        recordOutcome(
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
        next_attempt_at: Date | null;
      }[]
    >`
      select d.id, d.status, d.attempt_count, d.response_code, d.completed_at is not null as completed,
        (select count(*)::int from delivery_attempts a where a.delivery_id = d.id) as attempts, d.next_attempt_at
      from webhook_deliveries d where d.id = any(${ids})`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    ids.forEach((id, i) => {
      const row = byId.get(id);
      assert.equal(row?.attempt_count, 1);
      assert.equal(row.attempts, 1, "the attempt is recorded");
      if (i % 2 === 0) {
        assert.deepEqual(
          [row.status, row.response_code, row.completed, row.next_attempt_at],
          ["succeeded", 200, true, null],
        );
      } else {
        assert.deepEqual([row.status, row.response_code, row.completed], ["retrying", 503, false]);
        assert.equal(row.next_attempt_at?.getTime(), next.getTime(), "due again at its time");
      }
    });
  });

  it("does not let an outcome read before a resend undo it", async () => {
    const [a, b] = await newDeliveries(2);
    // Resent while its runner held it (as ResendDelivery does: due now, attempts renewed).
    await database.sql`
      update webhook_deliveries set resends = resends + 1, max_attempts = 12, next_attempt_at = now()
      where id = any(${[a!, b!]})`;
    // An attempt that was in flight: recorded and counted, the delivery stays as the resend left it.
    assert.equal(await recordOutcome(db, attempt(a!, { status: "failed", responseCode: 500 })), true);
    // An end without an attempt, decided on what was read before: dropped.
    assert.equal(
      await recordOutcome(db, {
        deliveryId: b!,
        resends: 0,
        attemptCount: 0,
        status: "expired",
        errorMessage: "the event expired",
      }),
      false,
    );
    const rows = await database.sql<
      { id: string; status: string; attempt_count: number; max_attempts: number; due: boolean; attempts: number }[]
    >`
      select id, status, attempt_count, max_attempts, next_attempt_at <= now() as due,
        (select count(*)::int from delivery_attempts t where t.delivery_id = d.id) as attempts
      from webhook_deliveries d where id = any(${[a!, b!]}) order by id`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    assert.deepEqual(byId.get(a!), {
      id: a,
      status: "pending",
      attempt_count: 1,
      max_attempts: 13,
      due: true,
      attempts: 1,
    });
    assert.deepEqual(byId.get(b!), {
      id: b,
      status: "pending",
      attempt_count: 0,
      max_attempts: 12,
      due: true,
      attempts: 0,
    });
  });

  it("closes a delivery without an attempt, keeping its last response", async () => {
    const [id] = await newDeliveries(1);
    await recordOutcome(
      db,
      attempt(id!, { status: "retrying", responseCode: 503, responseBody: "busy", nextAttemptAt: new Date() }),
    );
    assert.equal(
      await recordOutcome(db, {
        deliveryId: id!,
        resends: 0,
        attemptCount: 1,
        status: "expired",
        errorMessage: "the event expired",
      }),
      true,
    );
    const [row] = await database.sql<
      { status: string; attempt_count: number; response_body: string; error_message: string }[]
    >`
      select status, attempt_count, response_body, error_message from webhook_deliveries where id = ${id!}`;
    assert.deepEqual(row, {
      status: "expired",
      attempt_count: 1,
      response_body: "busy",
      error_message: "the event expired",
    });
  });

  it("records a late attempt without updating a delivery that moved on, and two attempts of one delivery in order", async () => {
    const [moved, twice] = await newDeliveries(2);
    await database.sql`update webhook_deliveries set status = 'cancelled' where id = ${moved!}`;
    const next = new Date(Date.now() + 3_600_000);
    const [late, first, second] = await Promise.all([
      recordOutcome(db, attempt(moved!)),
      recordOutcome(db, attempt(twice!, { status: "retrying", responseCode: 500, nextAttemptAt: next })),
      recordOutcome(db, attempt(twice!, { attemptNumber: 2 })),
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
