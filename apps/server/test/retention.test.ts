import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import { eventually, startReceiver, type Receiver, type TestDatabase } from "@httpqueue/testkit";
import { startApp, type App, type AppConfig } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createDatabase } from "../src/db/client.js";
import { FANOUT_TASK } from "../src/db/jobs.js";
import { deleteEndedEvents, removeEndedPayloads } from "../src/db/retention.js";
import { createLogger } from "../src/observability/logger.js";
import { scrape } from "./helpers/http.js";
import { rejection } from "./helpers/rejection.js";
import { createMigratedDatabase, FAST_ENV, waitForDelivery } from "./helpers/server.js";

// Retention with small settings: what is 2 s old goes (or loses its
// payload), swept every 200 ms, in batches of 2, by every server.

const SWEEP: NonNullable<AppConfig["retentionSweep"]> = { intervalMs: 200, batchSize: 2, unregisteredGraceMs: 300 };
/** Retried in an hour: a delivery that stays RETRYING throughout a test. */
const LATER = { scheduleSeconds: [3600], maxAttempts: 5 };

interface Server {
  app: App;
  client: HttpQueueClient;
  /** A counter of this server's /metrics. */
  counter(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/** `sweep` null: the sweep as servers run it (graphile-worker's cron). */
async function startServer(
  db: TestDatabase,
  env: Record<string, string>,
  sweep: AppConfig["retentionSweep"] | null = SWEEP,
): Promise<Server> {
  const config = loadConfig({ ...FAST_ENV, DATABASE_URL: db.url, IDEMPOTENCY_WINDOW: "1s", ...env });
  const app = await startApp(
    { ...config, databaseUrl: db.url, ...(sweep ? { retentionSweep: sweep } : {}) },
    createLogger(config.logLevel),
  );
  const client = createClient({ address: app.address });
  return {
    app,
    client,
    counter: async (name, labels) => (await scrape(app.httpAddress)).value(name, labels) ?? 0,
    async stop() {
      client.close();
      await app.stop();
    },
  };
}

/**
 * Records every row deleted from the tables retention deletes from (of
 * graphile-worker's jobs, those deleted unlocked with no attempt left: not
 * completed ones), so that the test can compare with what was counted.
 */
async function logDeletions(db: TestDatabase): Promise<void> {
  await db.sql.unsafe(`
    create table deletion_log (tbl text not null, id text not null);
    create function log_deletion() returns trigger language plpgsql as $$
    begin
      insert into deletion_log values (
        tg_table_name, coalesce(to_jsonb(old)->>'id', (to_jsonb(old)->>'delivery_id') || '#' || (to_jsonb(old)->>'attempt_number')));
      return old;
    end $$;
    create trigger log_deletion after delete on event_records for each row execute function log_deletion();
    create trigger log_deletion after delete on webhook_deliveries for each row execute function log_deletion();
    create trigger log_deletion after delete on delivery_attempts for each row execute function log_deletion();
    create trigger log_deletion after delete on webhook_registrations for each row execute function log_deletion();
    create trigger log_deletion after delete on graphile_worker._private_jobs for each row
      when (old.locked_at is null and old.attempts >= old.max_attempts) execute function log_deletion();
  `);
}

const exists = async (db: TestDatabase, table: "event_records" | "webhook_registrations", id: string) =>
  (await db.sql`select 1 from ${db.sql(table)} where id = ${id}`).length === 1;

/** An event's deliveries and attempts, with what retention may blank. */
const rowsOf = async (db: TestDatabase, eventId: string) => [
  ...(await db.sql<
    { delivery: string; status: string; body: string | null; attempt: number | null; attemptBody: string | null }[]
  >`
    select d.id as delivery, d.status::text as status, d.response_body as body, a.attempt_number as attempt,
      a.response_body as "attemptBody"
    from webhook_deliveries d left join delivery_attempts a on a.delivery_id = d.id
    where d.event_id = ${eventId} order by d.id, a.attempt_number`),
];

describe("retention", () => {
  const receivers: Receiver[] = [];
  const receiver = async (...args: Parameters<typeof startReceiver>) => {
    const r = await startReceiver(...args);
    receivers.push(r);
    return r;
  };
  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
  });

  it("reads RETENTION, PAYLOAD_RETENTION (RETENTION unless set) and IDEMPOTENCY_WINDOW, and refuses what cannot hold", () => {
    const defaults = loadConfig({});
    assert.deepEqual(
      [defaults.retentionMs, defaults.payloadRetentionMs, defaults.idempotencyWindowSeconds],
      [30 * 86_400_000, 30 * 86_400_000, 86_400],
    );
    const set = loadConfig({ RETENTION: "7d", PAYLOAD_RETENTION: "2d", IDEMPOTENCY_WINDOW: "1h" });
    assert.deepEqual(
      [set.retentionMs, set.payloadRetentionMs, set.idempotencyWindowSeconds],
      [604_800_000, 172_800_000, 3600],
    );
    const off = loadConfig({ RETENTION: "0" });
    assert.deepEqual([off.retentionMs, off.payloadRetentionMs], [0, 0]);
    assert.equal(loadConfig({ RETENTION: "0", PAYLOAD_RETENTION: "90d" }).payloadRetentionMs, 90 * 86_400_000);
    const refused: [Record<string, string>, RegExp][] = [
      [{ RETENTION: "soon" }, /RETENTION must be a duration/],
      [{ RETENTION: "500ms" }, /RETENTION must be 0 \(off\) or at least 1s/],
      [{ PAYLOAD_RETENTION: "31d" }, /PAYLOAD_RETENTION \(31d\) must not exceed RETENTION \(30d\)/],
      [
        { RETENTION: "1h" },
        /IDEMPOTENCY_WINDOW \(24h\) must not exceed PAYLOAD_RETENTION \(RETENTION, RETENTION \(1h\)\)/,
      ],
      [{ PAYLOAD_RETENTION: "2h" }, /IDEMPOTENCY_WINDOW \(24h\) must not exceed PAYLOAD_RETENTION \(2h\)/],
      [
        { RETENTION: "2d", PAYLOAD_RETENTION: "0", IDEMPOTENCY_WINDOW: "3d" },
        /IDEMPOTENCY_WINDOW \(3d\) must not exceed RETENTION \(2d\)/,
      ],
      [{ IDEMPOTENCY_WINDOW: "1500ms" }, /IDEMPOTENCY_WINDOW must be whole seconds/],
      [{ IDEMPOTENCY_WINDOW: "0" }, /IDEMPOTENCY_WINDOW must be at least 1000ms/],
    ];
    for (const [env, message] of refused) assert.throws(() => loadConfig(env), message, JSON.stringify(env));
  });

  describe("RETENTION 2s, two servers sweeping one database", () => {
    let db: TestDatabase;
    const servers: Server[] = [];
    before(async () => {
      db = await createMigratedDatabase();
      await logDeletions(db);
      for (let i = 0; i < 2; i++) servers.push(await startServer(db, { RETENTION: "2s", PAYLOAD_RETENTION: "0" }));
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.stop()));
      await db.drop();
    });

    it("deletes exactly what is due, counting each row once across the servers", async () => {
      const [one, two] = servers as [Server, Server];
      const ok = await receiver();
      const failing = await receiver(() => 500);

      await one.client.registerWebhook({ namespace: "ret", event: "ok", url: ok.url });
      const b = await one.client.registerWebhook({
        namespace: "ret",
        event: "mixed",
        url: failing.url,
        retryPolicy: LATER,
      });
      await one.client.registerWebhook({ namespace: "ret", event: "mixed", url: ok.url });
      const gone = await two.client.registerWebhook({ namespace: "ret", event: "gone", url: ok.url });
      const lonely = await two.client.registerWebhook({ namespace: "ret", event: "never", url: ok.url });

      // Delivered: goes. No webhook: goes. One delivery retrying: the event stays, with its ended one too.
      const push = (client: HttpQueueClient, event: string) =>
        client.pushEvent({ namespace: "ret", event, payload: `{"e":"${event}"}` }).then((r) => r.eventId);
      const delivered = await push(one.client, "ok");
      const unrouted = await push(two.client, "none");
      const mixed = await push(one.client, "mixed");
      const toGone = await push(two.client, "gone");
      await waitForDelivery(one.client, delivered, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      await waitForDelivery(one.client, toGone, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      await eventually(async () => {
        const statuses = (await rowsOf(db, mixed)).map((r) => r.status).sort();
        return statuses.join() === "retrying,succeeded" ? true : undefined;
      });
      const mixedRows = await rowsOf(db, mixed);
      // Unregistered: one with a delivery keeps its row until that goes; one without goes after the grace.
      // Its secrets (a rotation's previous one too) are wiped at once.
      const rotated = await two.client.rotateSecret({ webhookId: gone.webhookId, overlapSeconds: 3600 });
      assert.ok(rotated.previousSecretExpiresAt, "the previous secret signs on");
      await two.client.unregisterWebhook({ webhookId: gone.webhookId });
      const [wiped] = await db.sql<{ current: string; previous: string | null }[]>`
        select signing_secret as current, previous_signing_secret as previous
        from webhook_registrations where id = ${gone.webhookId}`;
      assert.deepEqual({ ...wiped }, { current: "", previous: null }, "the secrets are wiped when it is unregistered");
      await two.client.unregisterWebhook({ webhookId: lonely.webhookId });
      await db.sql`insert into webhook_runners (webhook_id, owner) values (${gone.webhookId}, 'a-pool-long-gone')`;
      // Jobs that failed for good an hour ago: ours goes, another task's stays.
      const added = await db.sql<{ id: string }[]>`
        select (graphile_worker.add_job('httpqueue.fanout', json_build_object('eventId', gen_random_uuid()),
            run_at => now() + interval '1 day', max_attempts => 1)).id
        union all
        select (graphile_worker.add_job('someone.else', '{}', run_at => now() + interval '1 day', max_attempts => 1)).id`;
      await db.sql`
        update graphile_worker._private_jobs set attempts = 1, updated_at = now() - interval '1 hour', last_error = 'x'
        where id in ${db.sql(added.map((j) => j.id))}`;

      await eventually(
        async () => {
          for (const id of [delivered, unrouted, toGone]) if (await exists(db, "event_records", id)) return undefined;
          return (await exists(db, "webhook_registrations", gone.webhookId)) ? undefined : true;
        },
        20_000,
        "the ended events and the unregistered webhook to go",
      );
      assert.equal(
        await exists(db, "webhook_registrations", lonely.webhookId),
        false,
        "no delivery: gone after the grace",
      );
      assert.equal(await exists(db, "event_records", mixed), true, "a delivery still retrying keeps its event");
      const [kept] = await db.sql<{ payload: string }[]>`select payload from event_records where id = ${mixed}`;
      assert.equal(kept?.payload, '{"e":"mixed"}', "PAYLOAD_RETENTION 0: its payload too");
      assert.deepEqual(await rowsOf(db, mixed), mixedRows, "... and its deliveries (the ended one too) and attempts");
      assert.deepEqual([...(await db.sql`select 1 from webhook_runners where webhook_id = ${gone.webhookId}`)], []);
      const failedJobs = await db.sql<{ task: string }[]>`
        select t.identifier as task from graphile_worker._private_jobs j
        join graphile_worker._private_tasks t on t.id = j.task_id where j.attempts >= j.max_attempts and j.locked_at is null`;
      assert.deepEqual(
        failedJobs.map((j) => j.task),
        ["someone.else"],
      );
      assert.equal(await exists(db, "webhook_registrations", b.webhookId), true, "a registered webhook stays");

      // The retrying delivery ends (its webhook is deactivated): its event goes, with both deliveries and their attempts.
      await one.client.updateWebhook({ webhookId: b.webhookId, active: false });
      await eventually(
        async () => ((await exists(db, "event_records", mixed)) ? undefined : true),
        20_000,
        "mixed to go",
      );
      await sleep(3 * SWEEP.intervalMs);

      const log = await db.sql<{ tbl: string; id: string }[]>`select tbl, id from deletion_log`;
      const deleted = (tbl: string) => log.filter((r) => r.tbl === tbl).map((r) => r.id);
      assert.deepEqual(deleted("event_records").sort(), [delivered, unrouted, mixed, toGone].sort());
      assert.deepEqual(deleted("webhook_registrations").sort(), [gone.webhookId, lonely.webhookId].sort());
      assert.equal(deleted("webhook_deliveries").length, 4, "to ok, to both webhooks of mixed, to gone");
      assert.equal(deleted("delivery_attempts").length, 2 + mixedRows.length);
      assert.equal(deleted("_private_jobs").length, 1);
      const counted = async (table: string) => {
        let sum = 0;
        for (const s of servers) sum += await s.counter("httpqueue_retention_deleted_total", { table });
        return sum;
      };
      for (const [table, tbl] of [
        ["event_records", "event_records"],
        ["webhook_deliveries", "webhook_deliveries"],
        ["delivery_attempts", "delivery_attempts"],
        ["webhook_registrations", "webhook_registrations"],
        ["graphile_worker.jobs", "_private_jobs"],
      ] as const) {
        assert.equal(await counted(table), deleted(tbl).length, `${table}: counted as deleted`);
      }
      assert.equal(await counted("webhook_runners"), 1);
      const [left] = await db.sql<{ n: number }[]>`select count(*)::int as n from event_records`;
      assert.equal(left?.n, 0);
    });
  });

  describe("PAYLOAD_RETENTION 2s with RETENTION 0 (off)", () => {
    let db: TestDatabase;
    let server: Server;
    before(async () => {
      db = await createMigratedDatabase();
      await logDeletions(db);
      server = await startServer(db, { RETENTION: "0", PAYLOAD_RETENTION: "2s" });
    });
    after(async () => {
      await server.stop();
      await db.drop();
    });

    it("blanks the payloads and response bodies of ended events only, deletes nothing, and refuses to send them again", async () => {
      const { client } = server;
      const since = new Date(Date.now() - 1000);
      const answers = await receiver(() => ({ status: 200, body: "receipt-secret" }));
      const refusing = await receiver(() => ({ status: 500, body: "nope-secret" }));
      const w = await client.registerWebhook({ namespace: "pay", event: "blank", url: answers.url });
      const f = await client.registerWebhook({
        namespace: "pay",
        event: "blank",
        url: refusing.url,
        retryPolicy: { scheduleSeconds: [1], maxAttempts: 1 },
      });
      await client.registerWebhook({ namespace: "pay", event: "held", url: refusing.url, retryPolicy: LATER });
      const blank = (await client.pushEvent({ namespace: "pay", event: "blank", payload: '{"card":"4111"}' })).eventId;
      const held = (await client.pushEvent({ namespace: "pay", event: "held", payload: '{"card":"5500"}' })).eventId;
      await eventually(async () => {
        const statuses = (await rowsOf(db, blank)).map((r) => r.status).sort();
        return statuses.join() === "failed,succeeded" ? true : undefined;
      });
      await waitForDelivery(client, held, DeliveryStatus.DELIVERY_STATUS_RETRYING);
      const heldBefore = await rowsOf(db, held);
      assert.ok(heldBefore.every((r) => r.body === "nope-secret" && r.attemptBody === "nope-secret"));

      const { event } = await eventually(async () => {
        const got = await client.getEvent({ eventId: blank });
        return got.event?.payloadRemovedAt ? got : undefined;
      });
      assert.equal(event?.payload, "", "GetEvent: the payload is gone");
      assert.ok(event.payloadRemovedAt && event.payloadRemovedAt.getTime() >= (event.createdAt?.getTime() ?? 0) + 2000);
      const blanked = await rowsOf(db, blank);
      assert.equal(blanked.length, 2, "its deliveries and attempts stay");
      assert.ok(
        blanked.every((r) => r.body === null && r.attemptBody === null && r.attempt === 1),
        "their bodies go",
      );
      const [heldEvent] = await db.sql<{ payload: string; removed: Date | null }[]>`
        select payload, payload_removed_at as removed from event_records where id = ${held}`;
      assert.deepEqual({ ...heldEvent }, { payload: '{"card":"5500"}', removed: null }, "still retrying: untouched");
      assert.deepEqual(await rowsOf(db, held), heldBefore);
      const listed = await client.listEvents({ namespace: "pay" });
      assert.deepEqual(
        listed.events.map((e) => [e.id, e.payloadRemovedAt !== undefined]),
        [
          [held, false],
          [blank, true],
        ],
      );

      // Sending it again is refused, by name; recovering and replaying leave it out.
      const [toW] = (await client.getWebhookStatus({ eventId: blank })).deliveries.filter(
        (d) => d.webhookId === w.webhookId,
      );
      const refused = await rejection(client.resendDelivery({ deliveryId: toW?.id ?? "" }));
      assert.equal(refused.code, Code.FAILED_PRECONDITION);
      assert.match(
        refused.details,
        new RegExp(
          `^event ${blank} cannot be sent again: retention removed its payload at .* \\(PAYLOAD_RETENTION\\)$`,
        ),
      );
      assert.deepEqual(await client.recoverWebhook({ webhookId: f.webhookId, since }), { resent: 0 });
      const recent = (await client.pushEvent({ namespace: "pay", event: "blank", payload: '{"card":"none"}' })).eventId;
      const late = await client.registerWebhook({ namespace: "pay", event: "blank", url: answers.url });
      assert.deepEqual(await client.replayMissed({ webhookId: late.webhookId, since }), { queued: 1 });
      const toLate = await db.sql<{ event_id: string }[]>`
        select event_id from webhook_deliveries where webhook_id = ${late.webhookId}`;
      assert.deepEqual(
        toLate.map((r) => r.event_id),
        [recent],
      );
      assert.equal(
        (await rowsOf(db, blank)).filter((r) => r.status !== "succeeded" && r.status !== "failed").length,
        0,
      );

      // Once the last one ended, it goes too. Nothing is deleted (RETENTION 0); the counter matches.
      await eventually(async () =>
        (await client.getEvent({ eventId: recent })).event?.payloadRemovedAt ? true : undefined,
      );
      await sleep(3 * SWEEP.intervalMs);
      const removed = await db.sql<{ id: string }[]>`select id from event_records where payload_removed_at is not null`;
      assert.deepEqual(removed.map((r) => r.id).sort(), [blank, recent].sort());
      assert.equal(await server.counter("httpqueue_retention_payloads_removed_total"), 2);
      assert.equal((await db.sql`select 1 from deletion_log`).length, 0);
      assert.equal(await server.counter("httpqueue_retention_deleted_total", { table: "event_records" }), 0);
      assert.deepEqual(await rowsOf(db, held), heldBefore);
    });
  });

  it("does nothing with RETENTION 0 and PAYLOAD_RETENTION 0: no sweep is ever queued", async () => {
    const db = await createMigratedDatabase();
    const server = await startServer(db, { RETENTION: "0" });
    try {
      const { eventId } = await server.client.pushEvent({ namespace: "off", event: "e", payload: '{"kept":true}' });
      await sleep(2500);
      const [row] = await db.sql<{ payload: string; removed: Date | null }[]>`
        select payload, payload_removed_at as removed from event_records where id = ${eventId}`;
      assert.deepEqual({ ...row }, { payload: '{"kept":true}', removed: null });
      const sweeps = await db.sql`
        select 1 from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
        where t.identifier = 'httpqueue.retention'
        union all select 1 from graphile_worker._private_known_crontabs`;
      assert.equal(sweeps.length, 0, "no sweep queued, none in the crontab");
    } finally {
      await server.stop();
      await db.drop();
    }
  });

  it("registers the sweep with graphile-worker's cron, once a minute, when no interval is given", async () => {
    const db = await createMigratedDatabase();
    const server = await startServer(db, {}, null);
    try {
      const known = await db.sql<{ identifier: string }[]>`
        select identifier from graphile_worker._private_known_crontabs`;
      assert.deepEqual(
        known.map((k) => k.identifier),
        ["httpqueue.retention"],
      );
    } finally {
      await server.stop();
      await db.drop();
    }
  });

  // A batch that began before a replay (or fan-out) added a delivery, and
  // reached its event after that committed, must see the delivery.
  for (const batch of ["removeEndedPayloads", "deleteEndedEvents"] as const) {
    it(`${batch}: a delivery added while the batch began keeps its event`, async () => {
      const database = await createMigratedDatabase();
      // One connection for the batch, two reserved (the test's advisory lock, the added delivery).
      const db = createDatabase({ url: database.url, poolSize: 3 });
      const { sql } = database;
      const holder = await db.$client.reserve();
      const adder = await db.$client.reserve();
      try {
        const [w1, w2] = await sql<{ id: string }[]>`
          insert into webhook_registrations (namespace, event, url, signing_secret)
          values ('race', 'e', 'http://127.0.0.1:1/', 'whsec_x'), ('race', 'e', 'http://127.0.0.1:2/', 'whsec_x')
          returning id`;
        const [event] = await sql<{ id: string }[]>`
          insert into event_records (namespace, event, payload, ttl_seconds, expires_at)
          values ('race', 'e', '{"n":1}', 60, now() + interval '1 day') returning id`;
        const eventId = event?.id ?? "";
        await sql`
          insert into webhook_deliveries (webhook_id, event_id, status, max_attempts)
          values (${w1?.id ?? ""}, ${eventId}, 'succeeded', 1)`;
        // The batch's changes wait, once it has begun, for the advisory lock the test holds.
        await sql.unsafe(`
          create function hold() returns trigger language plpgsql as $$
          begin perform pg_advisory_xact_lock(4242); return null; end $$;
          create trigger hold before update or delete on event_records for each statement execute function hold();
          create trigger hold before update or delete on webhook_deliveries for each statement execute function hold();
          create trigger hold before update or delete on delivery_attempts for each statement execute function hold();`);
        await holder`select pg_advisory_lock(4242)`;
        const future = new Date(Date.now() + 60_000);
        const running = (
          batch === "removeEndedPayloads" ? removeEndedPayloads(db, future, 10) : deleteEndedEvents(db, future, 10)
        ).then(
          () => undefined,
          (err: unknown) => err,
        );
        await eventually(async () => {
          const [waiting] = await sql<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'`;
          return waiting?.n === 1 ? true : undefined;
        });
        // As ReplayMissed and fan-out do: the event held FOR SHARE (unless its payload went), a delivery added.
        let added = false;
        await adder`begin`;
        try {
          await adder`set local lock_timeout = '1s'`;
          const held = await adder`
            select 1 from event_records where id = ${eventId} and payload_removed_at is null for share`;
          if (held.length === 1) {
            await adder`
              insert into webhook_deliveries (webhook_id, event_id, status, max_attempts, next_attempt_at)
              values (${w2?.id ?? ""}, ${eventId}, 'pending', 1, now())`;
            added = true;
          }
          await adder`commit`;
        } catch {
          // The batch held the event first: the delivery is not added (and the event may go).
          await adder`rollback`;
          added = false;
        }
        await holder`select pg_advisory_unlock(4242)`;
        assert.equal(await running, undefined, "the batch did not fail");
        const [row] = await sql<{ payload: string; pending: number }[]>`
          select e.payload, (select count(*)::int from webhook_deliveries d
            where d.event_id = e.id and d.status = 'pending') as pending
          from event_records e where e.id = ${eventId}`;
        if (added) {
          assert.deepEqual(
            { ...row },
            { payload: '{"n":1}', pending: 1 },
            "its pending delivery keeps the event whole",
          );
        } else if (batch === "removeEndedPayloads") {
          assert.deepEqual({ ...row }, { payload: "", pending: 0 }, "the batch held it first, and blanked it");
        } else {
          assert.equal(row, undefined, "the batch held it first, and deleted it");
        }
      } finally {
        holder.release();
        adder.release();
        await db.$client.end();
        await database.drop();
      }
    });
  }

  it("keeps an event whose fan-out job is still queued (no delivery yet), blanked or deleted once it is done", async () => {
    const database = await createMigratedDatabase();
    const db = createDatabase({ url: database.url, poolSize: 2 });
    const { sql } = database;
    try {
      const [event] = await sql<{ id: string }[]>`
        insert into event_records (namespace, event, payload, ttl_seconds, expires_at)
        values ('wide', 'e', '{"n":1}', 60, now() + interval '1 day') returning id`;
      const eventId = event?.id ?? "";
      // Its fan-out is queued (as a push wider than the inline fan-out queues it), due later.
      await sql`select graphile_worker.add_job(${FANOUT_TASK}, json_build_object('eventId', ${eventId}::uuid),
        run_at => now() + interval '1 hour')`;
      const future = new Date(Date.now() + 60_000);
      assert.equal(await removeEndedPayloads(db, future, 10), 0, "not blanked");
      assert.equal((await deleteEndedEvents(db, future, 10)).event_records, 0, "not deleted");
      const [kept] = await sql<{ payload: string }[]>`select payload from event_records where id = ${eventId}`;
      assert.equal(kept?.payload, '{"n":1}');

      await sql`delete from graphile_worker._private_jobs`;
      assert.equal((await deleteEndedEvents(db, future, 10)).event_records, 1, "deleted once its fan-out is done");
    } finally {
      await db.$client.end();
      await database.drop();
    }
  });

  it("takes different events in batches that run at once, and deletes each once", async () => {
    const database = await createMigratedDatabase();
    const db = createDatabase({ url: database.url, poolSize: 4 });
    try {
      await database.sql`
        with w as (
          insert into webhook_registrations (namespace, event, url, signing_secret)
          values ('many', 'e', 'http://127.0.0.1:1/', 'whsec_x') returning id
        ), e as (
          insert into event_records (namespace, event, payload, ttl_seconds, expires_at)
          select 'many', 'e', '{}', 60, now() from generate_series(1, 61) returning id
        ), d as (
          insert into webhook_deliveries (webhook_id, event_id, status, max_attempts)
          select w.id, e.id, 'succeeded', 1 from w, e returning id
        )
        insert into delivery_attempts (delivery_id, attempt_number, started_at, duration_ms)
        select d.id, n, now(), 1 from d, generate_series(1, 2) n`;
      // One still retrying: kept.
      const [kept] = await database.sql<{ id: string }[]>`
        update webhook_deliveries set status = 'retrying'
        where id = (select id from webhook_deliveries order by id limit 1) returning event_id as id`;
      const future = new Date(Date.now() + 60_000);
      const loop = async () => {
        const total = { event_records: 0, webhook_deliveries: 0, delivery_attempts: 0 };
        for (;;) {
          const batch = await deleteEndedEvents(db, future, 3);
          total.event_records += batch.event_records;
          total.webhook_deliveries += batch.webhook_deliveries;
          total.delivery_attempts += batch.delivery_attempts;
          if (batch.event_records === 0) return total;
        }
      };
      const totals = await Promise.all([loop(), loop(), loop(), loop()]);
      const sum = (key: keyof (typeof totals)[number]) => totals.reduce((n, t) => n + t[key], 0);
      assert.deepEqual([sum("event_records"), sum("webhook_deliveries"), sum("delivery_attempts")], [60, 60, 120]);
      assert.ok(totals.filter((t) => t.event_records > 0).length >= 2, "the batches ran side by side");
      const [left] = await database.sql<{ events: number; deliveries: number; attempts: number }[]>`
        select (select count(*) from event_records)::int as events, (select count(*) from webhook_deliveries)::int as deliveries,
          (select count(*) from delivery_attempts)::int as attempts`;
      assert.deepEqual({ ...left }, { events: 1, deliveries: 1, attempts: 2 });
      assert.equal(await exists(database, "event_records", kept?.id ?? ""), true);
    } finally {
      await db.$client.end();
      await database.drop();
    }
  });
});
