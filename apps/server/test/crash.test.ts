import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import { eventually, type ServerProcess, type TestDatabase } from "@httpqueue/testkit";
import { databaseAndReceivers, spawnServer, startTestServer, waitForDelivery } from "./helpers/server.js";

/** Starts the built server on the test database and returns it with a client. */
async function start(db: TestDatabase): Promise<{ proc: ServerProcess; client: HttpQueueClient }> {
  const proc = await spawnServer({ DATABASE_URL: db.url });
  return { proc, client: createClient({ address: proc.address }) };
}

async function kill(proc: ServerProcess, client: HttpQueueClient) {
  client.close();
  proc.child.kill("SIGKILL");
  assert.equal(await proc.exited, "SIGKILL");
}

describe("crash safety", () => {
  const fixture = databaseAndReceivers();

  it("an event pushed just before SIGKILL is delivered after a restart", async () => {
    const receiver = await fixture.receiver();
    const first = await start(fixture.db);
    let eventId: string;
    try {
      await first.client.registerWebhook({ namespace: "crash", event: "push", url: receiver.url });
      ({ eventId } = await first.client.pushEvent({ namespace: "crash", event: "push", payload: '{"n":1}' }));
    } finally {
      // Killed whatever happened: a failed call must not leave the server running.
      await kill(first.proc, first.client);
    }

    const { proc, client } = await start(fixture.db);
    try {
      const [request] = await receiver.waitForRequests(1, 10_000);
      assert.equal(request?.body, '{"n":1}');
      await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    } finally {
      await kill(proc, client);
    }
  });

  it("a delivery in flight when the server is killed is retried within seconds of the restart", async () => {
    // The first request never gets an answer: the server dies while its job is locked.
    const receiver = await fixture.receiver((_req, i) => (i === 0 ? "hang" : 200));
    const first = await start(fixture.db);
    let eventId: string;
    try {
      await first.client.registerWebhook({ namespace: "crash", event: "inflight", url: receiver.url });
      ({ eventId } = await first.client.pushEvent({ namespace: "crash", event: "inflight", payload: "{}" }));
      await receiver.waitForRequests(1);
    } finally {
      await kill(first.proc, first.client);
    }
    const [locked] = await fixture.db.sql<{ n: number }[]>`
      select count(*)::int as n from graphile_worker.jobs where locked_by is not null`;
    assert.ok((locked?.n ?? 0) >= 1, "the dead server's job is still locked");

    const { proc, client } = await start(fixture.db);
    try {
      const requests = await receiver.waitForRequests(2, 10_000);
      assert.equal(requests[1]?.headers["webhook-id"], requests[0]?.headers["webhook-id"]);
      const delivery = await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      assert.equal(delivery.attemptCount, 1, "the interrupted attempt was never recorded");
      assert.match(proc.output(), /unlocked jobs held by workers that are gone/);
    } finally {
      await kill(proc, client);
    }
  });
});

describe("jobs of live workers", () => {
  const fixture = databaseAndReceivers();

  it("a worker whose liveness session drops for a moment keeps its jobs: no second request", async () => {
    // Two servers on one database; the first request is never answered, so its job stays locked.
    const receiver = await fixture.receiver((_req, i) => (i === 0 ? "hang" : 200));
    const a = await startTestServer({}, fixture.db);
    const b = await startTestServer({}, fixture.db);
    try {
      await a.client.registerWebhook({ namespace: "live", event: "slow", url: receiver.url });
      await a.client.pushEvent({ namespace: "live", event: "slow", payload: "{}" });
      await receiver.waitForRequests(1);
      const [holder] = await fixture.db.sql<{ pool: string }[]>`
        select locked_by as pool from graphile_worker.jobs
        where task_identifier = 'httpqueue.deliver' and locked_by is not null`;
      assert.ok(holder, "the delivery's job is locked by the worker running it");
      const terminated = await fixture.db.sql`
        select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = ${`httpqueue-worker:${holder.pool}`}`;
      assert.equal(terminated.length, 1, "its liveness session is cut");
      // Longer than two sweeps of every server: a pool taken for dead would have lost its job by now.
      await new Promise((resolve) => setTimeout(resolve, 12_000));
      assert.equal(receiver.requests.length, 1, "the job was not handed to another worker");
      const [still] = await fixture.db.sql<{ pool: string | null }[]>`
        select locked_by as pool from graphile_worker.jobs where task_identifier = 'httpqueue.deliver'`;
      assert.equal(still?.pool, holder.pool);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a job queued by the version before per-webhook delivery runs its delivery's webhook, and sends nothing twice", async () => {
    const receiver = await fixture.receiver((_req, i) => (i === 0 ? 500 : 200));
    const server = await startTestServer({}, fixture.db);
    try {
      const { webhookId } = await server.client.registerWebhook({
        namespace: "live",
        event: "old",
        url: receiver.url,
        retryPolicy: { scheduleSeconds: [3600] }, // retried in an hour, unless made due
      });
      const { eventId } = await server.client.pushEvent({ namespace: "live", event: "old", payload: "{}" });
      const retrying = await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_RETRYING);
      // As if the retry's job had been queued by the previous version: its payload names the delivery.
      await fixture.db.sql`
        select graphile_worker.add_job('httpqueue.deliver', json_build_object('deliveryId', ${retrying.id}::uuid, 'attempt', 2))`;
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(receiver.requests.length, 1, "not due yet: nothing is sent");
      await fixture.db.sql`update webhook_deliveries set next_attempt_at = now() where id = ${retrying.id}`;
      await fixture.db.sql`
        select graphile_worker.add_job('httpqueue.deliver', json_build_object('deliveryId', ${retrying.id}::uuid, 'attempt', 2))`;
      const done = await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      assert.equal(done.attemptCount, 2);
      assert.equal(receiver.requests.length, 2);
      assert.equal(receiver.requests[1]?.headers["webhook-id"], retrying.id);
      // The runner lets go just after recording the outcome that GetWebhookStatus shows.
      await eventually(
        async () => {
          const [left] = await fixture.db.sql<
            { n: number }[]
          >`select count(*)::int as n from webhook_runners where webhook_id = ${webhookId}`;
          return left?.n === 0 ? true : undefined;
        },
        5_000,
        "the webhook let go once nothing is due",
      );
    } finally {
      await server.stop();
    }
  });
});
