import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "@httpqueue/sdk";
import { eventually, type Receiver, startReceiver } from "@httpqueue/testkit";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

describe("cancellation", () => {
  let server: TestServer;
  let receiver: Receiver;

  before(async () => {
    server = await startTestServer();
    // Every delivery fails once and asks for a long pause: it sits in RETRYING.
    receiver = await startReceiver(() => ({ status: 503, headers: { "retry-after": "3600" } }));
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  /** Registers a webhook, pushes an event, and waits until its delivery is retrying. */
  async function retryingDelivery(event: string) {
    const { webhookId } = await server.client.registerWebhook({ namespace: "cancel", event, url: receiver.url });
    const { eventId } = await server.client.pushEvent({ namespace: "cancel", event, payload: "{}" });
    const delivery = await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_RETRYING);
    return { webhookId, eventId, delivery };
  }

  /** The webhook's wake-up jobs waiting in the queue (for its retry). */
  const queuedJobs = async (webhookId: string) => {
    const [row] = await server.db.sql<{ n: number }[]>`
      select count(*)::int as n from graphile_worker.jobs
      where key like ${`httpqueue.deliver:${webhookId}@%`} and locked_at is null`;
    return row?.n;
  };

  it("unregistering a webhook cancels its pending deliveries and removes their jobs", async () => {
    const { webhookId, eventId } = await retryingDelivery("unregister");
    await eventually(async () => ((await queuedJobs(webhookId)) === 1 ? true : undefined));

    const { cancelledDeliveries } = await server.client.unregisterWebhook({ webhookId });
    assert.equal(cancelledDeliveries, 1);
    assert.equal(await queuedJobs(webhookId), 0, "the retry will not run");

    const { deliveries } = await server.client.getWebhookStatus({ identifier: { $case: "eventId", value: eventId } });
    assert.equal(deliveries[0]?.status, DeliveryStatus.DELIVERY_STATUS_CANCELLED);
    assert.equal(deliveries[0].nextAttemptAt, undefined);
    assert.ok(deliveries[0].completedAt);

    await assert.rejects(server.client.getWebhookStatus({ identifier: { $case: "webhookId", value: webhookId } }), {
      codeName: "NOT_FOUND",
    });
    await assert.rejects(server.client.unregisterWebhook({ webhookId }), { codeName: "NOT_FOUND" });
    const listed = await server.client.listWebhooks({ namespace: "cancel" });
    assert.ok(!listed.webhooks.some((w) => w.id === webhookId));
  });

  it("deactivating a webhook cancels its pending deliveries; new events skip it", async () => {
    const { webhookId } = await retryingDelivery("deactivate");
    await eventually(async () => ((await queuedJobs(webhookId)) === 1 ? true : undefined));
    const { webhook } = await server.client.updateWebhook({ webhookId, active: false });
    assert.equal(webhook?.active, false);
    assert.equal(await queuedJobs(webhookId), 0);

    const status = await server.client.getWebhookStatus({ identifier: { $case: "webhookId", value: webhookId } });
    assert.deepEqual(status.counts, [{ status: DeliveryStatus.DELIVERY_STATUS_CANCELLED, count: 1 }]);

    const before = receiver.requests.length;
    const { eventId } = await server.client.pushEvent({ namespace: "cancel", event: "deactivate", payload: "{}" });
    const later = await server.client.getWebhookStatus({ identifier: { $case: "eventId", value: eventId } });
    assert.equal(later.deliveries.length, 0);
    assert.equal(receiver.requests.length, before);
  });

  it("a delivery whose webhook went away before its job ran is cancelled, not sent", async () => {
    const { webhookId, delivery } = await retryingDelivery("race");
    // The delivery stays retrying and becomes due, its wake-up job runs (as if
    // they had been read just before the cancellation).
    await eventually(async () => ((await queuedJobs(webhookId)) === 1 ? true : undefined));
    await server.db.sql`update webhook_registrations set active = false where id = ${webhookId}`;
    await server.db.sql`update webhook_deliveries set next_attempt_at = now() where id = ${delivery.id}`;
    await server.db.sql`update graphile_worker._private_jobs set run_at = now()
      where key like ${`httpqueue.deliver:${webhookId}@%`}`;
    const before = receiver.requests.length;
    const cancelled = await eventually(async () => {
      const [row] = await server.db.sql<{ status: string; error_message: string }[]>`
        select status, error_message from webhook_deliveries where id = ${delivery.id}`;
      return row?.status === "cancelled" ? row : undefined;
    });
    assert.equal(cancelled.error_message, "the webhook was deactivated or unregistered");
    assert.equal(receiver.requests.length, before);
  });
});
