import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@httpqueue/sdk";
import { eventually } from "@httpqueue/testkit";
import { startApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { formatDuration } from "../src/observability/health.js";
import { createLogger } from "../src/observability/logger.js";
import { readyz, scrape } from "./helpers/http.js";
import { databaseAndReceivers, FAST_ENV, startTestServer } from "./helpers/server.js";

const QUEUE_ENV = { QUEUE_STALL_AFTER: "1s", HEALTH_CHECK_INTERVAL: "50ms", METRICS_QUERY_INTERVAL: "50ms" };

/** /readyz's queue check (the helper's type names the other checks only). */
async function queueCheck(address: string) {
  const { status, body } = await readyz(address);
  const checks = body.checks as Record<string, { ok: boolean; reason?: string } | undefined>;
  return { status, queue: checks.queue };
}

describe("queue health", () => {
  const fixture = databaseAndReceivers();

  it("formats durations in the settings' grammar", () => {
    assert.equal(formatDuration(192_000), "3m12s");
    assert.equal(formatDuration(120_000), "2m");
    assert.equal(formatDuration(3_723_000), "1h2m3s");
    assert.equal(formatDuration(1_500), "1.5s");
    assert.equal(formatDuration(250), "250ms");
  });

  it("QUEUE_STALL_AFTER: a duration, 0 (off) or at least 1s, 2m by default", () => {
    assert.equal(loadConfig({}).queueStallAfterMs, 120_000);
    assert.equal(loadConfig({ QUEUE_STALL_AFTER: "0" }).queueStallAfterMs, 0);
    assert.equal(loadConfig({ QUEUE_STALL_AFTER: "90s" }).queueStallAfterMs, 90_000);
    assert.throws(
      () => loadConfig({ QUEUE_STALL_AFTER: "500ms" }),
      /QUEUE_STALL_AFTER must be 0 \(off\) or at least 1s/,
    );
    assert.throws(() => loadConfig({ QUEUE_STALL_AFTER: "soon" }), /QUEUE_STALL_AFTER must be a duration/);
  });

  it("fails readiness while a due job of ours is not taken, ignores other tasks' jobs, and recovers", async () => {
    const receiver = await fixture.receiver();
    const server = await startTestServer(QUEUE_ENV, fixture.db);
    const { sql } = fixture.db;
    try {
      const address = server.app.httpAddress;
      assert.deepEqual(await queueCheck(address), { status: 200, queue: { ok: true } });

      // A task no httpqueue worker runs: not ours to take, so it does not count.
      await sql`select graphile_worker.add_job('someone.else', '{}', run_at => now() - interval '10 minutes')`;
      await sleep(300);
      assert.deepEqual(await queueCheck(address), { status: 200, queue: { ok: true } });
      assert.equal((await scrape(address)).value("httpqueue_queue_oldest_due_seconds"), 0);

      // One of ours in a queue that a (gone) worker holds: due, and no worker may take it.
      const { webhookId } = await server.client.registerWebhook({ namespace: "qh", event: "stall", url: receiver.url });
      await sql`insert into graphile_worker._private_job_queues (queue_name, locked_at, locked_by)
        values ('qh-stalled', now(), 'a-worker-that-is-gone')`;
      await sql`select graphile_worker.add_job('httpqueue.deliver', json_build_object('webhookId', ${webhookId}::text),
        queue_name => 'qh-stalled', run_at => now() - interval '192 seconds')`;

      const stalled = await eventually(async () => {
        const r = await queueCheck(address);
        return r.status === 503 ? r : undefined;
      });
      assert.equal(stalled.queue?.ok, false);
      assert.match(stalled.queue.reason ?? "", /^the oldest due job has waited 3m\d{1,2}s \(QUEUE_STALL_AFTER 1s\)$/);
      const down = await scrape(address);
      assert.equal(down.value("httpqueue_ready"), 0);
      assert.equal(down.value("httpqueue_health_check", { check: "queue" }), 0);
      assert.ok((down.value("httpqueue_queue_oldest_due_seconds") ?? 0) >= 192);

      // The queue is let go: the worker takes the job, and readiness returns.
      await sql`update graphile_worker._private_job_queues set locked_at = null, locked_by = null
        where queue_name = 'qh-stalled'`;
      const ready = await eventually(async () => {
        const r = await queueCheck(address);
        return r.status === 200 ? r : undefined;
      });
      assert.deepEqual(ready.queue, { ok: true });
      // Taken is enough for the check; the job then runs and is gone.
      await eventually(async () => {
        const [left] = await sql<{ n: number }[]>`
          select count(*)::int as n from graphile_worker.jobs where task_identifier like 'httpqueue.%'`;
        return left?.n === 0 ? true : undefined;
      });
    } finally {
      await server.stop();
      await sql`delete from graphile_worker._private_jobs`;
    }
  });

  it("QUEUE_STALL_AFTER=0 turns the check off", async () => {
    const server = await startTestServer({ ...QUEUE_ENV, QUEUE_STALL_AFTER: "0" }, fixture.db);
    const { sql } = fixture.db;
    try {
      await sql`insert into graphile_worker._private_job_queues (queue_name, locked_at, locked_by)
        values ('qh-off', now(), 'a-worker-that-is-gone')`;
      await sql`select graphile_worker.add_job('httpqueue.deliver', json_build_object('webhookId', gen_random_uuid()::text),
        queue_name => 'qh-off', run_at => now() - interval '1 hour')`;
      await sleep(300);
      assert.deepEqual(await queueCheck(server.app.httpAddress), { status: 200, queue: { ok: true } });
      assert.ok(((await scrape(server.app.httpAddress)).value("httpqueue_queue_oldest_due_seconds") ?? 0) >= 3600);
    } finally {
      await server.stop();
      await sql`delete from graphile_worker._private_jobs`;
    }
  });

  it("queues a job again for a delivery whose job was lost, delivers it, and counts it", async () => {
    const receiver = await fixture.receiver();
    const config = loadConfig({ ...FAST_ENV, DATABASE_URL: fixture.db.url });
    const app = await startApp(
      { ...config, databaseUrl: fixture.db.url, reconcile: { intervalMs: 200, overdueSeconds: 1 } },
      createLogger(config.logLevel),
    );
    const client = createClient({ address: app.address });
    const { sql } = fixture.db;
    try {
      const before = (await scrape(app.httpAddress)).value("httpqueue_deliveries_reconciled_total");
      assert.equal(before, 0);
      await client.registerWebhook({ namespace: "qh", event: "lost", url: receiver.url });
      // The push and the loss of its jobs in one commit: no worker ever sees them.
      await sql.begin(async (tx) => {
        await tx`select httpqueue.push_event('qh', 'lost', '{"n":1}')`;
        const removed = await tx`delete from graphile_worker._private_jobs j
          using graphile_worker._private_tasks t
          where t.id = j.task_id and t.identifier like 'httpqueue.%' returning j.id`;
        assert.ok(removed.length > 0, "the push queued a job");
      });

      const [request] = await receiver.waitForRequests(1, 15_000);
      assert.deepEqual(JSON.parse(request?.body ?? "null"), { n: 1 });
      const counted = await eventually(async () => {
        const n = (await scrape(app.httpAddress)).value("httpqueue_deliveries_reconciled_total") ?? 0;
        return n >= 1 ? n : undefined;
      });
      assert.ok(counted >= 1);
      // Recorded just after the receiver answered.
      await eventually(async () => {
        const [row] = await sql<{ status: string }[]>`
          select d.status from webhook_deliveries d join webhook_registrations w on w.id = d.webhook_id
          where w.namespace = 'qh' and w.event = 'lost'`;
        return row?.status === "succeeded" ? true : undefined;
      });
    } finally {
      client.close();
      await app.stop();
    }
  });
});
