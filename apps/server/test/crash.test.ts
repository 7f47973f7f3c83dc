import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import { type ServerProcess, type TestDatabase } from "@httpqueue/testkit";
import { databaseAndReceivers, spawnServer, waitForDelivery } from "./helpers/server.js";

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
    let { proc, client } = await start(fixture.db);
    await client.registerWebhook({ namespace: "crash", event: "push", url: receiver.url });
    const { eventId } = await client.pushEvent({ namespace: "crash", event: "push", payload: '{"n":1}' });
    await kill(proc, client);

    ({ proc, client } = await start(fixture.db));
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
    let { proc, client } = await start(fixture.db);
    await client.registerWebhook({ namespace: "crash", event: "inflight", url: receiver.url });
    const { eventId } = await client.pushEvent({ namespace: "crash", event: "inflight", payload: "{}" });
    await receiver.waitForRequests(1);
    await kill(proc, client);
    const [locked] = await fixture.db.sql<{ n: number }[]>`
      select count(*)::int as n from graphile_worker.jobs where locked_by is not null`;
    assert.ok((locked?.n ?? 0) >= 1, "the dead server's job is still locked");

    ({ proc, client } = await start(fixture.db));
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
