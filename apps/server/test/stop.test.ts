import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, it } from "node:test";
import { eventually, startReceiver, type Receiver } from "@httpqueue/testkit";
import { createMigratedDatabase, startTestServer, waitForDelivery } from "./helpers/server.js";
import { DeliveryStatus } from "@httpqueue/sdk";

describe("stopping the server", () => {
  let receiver: Receiver | undefined;
  after(async () => {
    await receiver?.close();
  });

  it("leaves no session on its database once stop() resolves, nor one that comes back later", async () => {
    const db = await createMigratedDatabase();
    try {
      receiver = await startReceiver();
      const server = await startTestServer({}, db);
      // Every kind of connection the server opens: the API's pool, the worker's
      // pools and liveness session, the watch hub's LISTEN, the health checks.
      const { webhookId } = await server.client.registerWebhook({
        namespace: "stop",
        event: "done",
        url: receiver.url,
      });
      const watch = server.client.watchDeliveries({ webhookId });
      await watch.ready;
      const { eventId } = await server.client.pushEvent({ namespace: "stop", event: "done", payload: "{}" });
      await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      watch.close();
      await server.stop();

      const sessions = () =>
        db.sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where datname = ${db.name} and pid <> pg_backend_pid()`.then(([row]) => row?.n ?? -1);
      // A backend leaves pg_stat_activity a moment after its client closed the socket.
      await eventually(async () => ((await sessions()) === 0 ? true : undefined), 5_000, "no session left");
      // Nothing reconnects afterwards (a pool's or LISTEN's retry timer left running would).
      await sleep(2_000);
      assert.equal(await sessions(), 0);
    } finally {
      await db.drop();
    }
  });
});
