import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "@httpqueue/sdk";
import { type Receiver, type Responder, startReceiver } from "@httpqueue/testkit";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

interface AttemptRow {
  attempt_number: number;
  response_code: number | null;
  response_body: string | null;
  error_message: string | null;
  duration_ms: number;
}

describe("retries", () => {
  let server: TestServer;
  const receivers: Receiver[] = [];

  before(async () => {
    server = await startTestServer({ MAX_ATTEMPTS: "4", RESPONSE_BODY_LIMIT_BYTES: "32" });
  });
  after(async () => {
    await server.stop();
    await Promise.all(receivers.map((r) => r.close()));
  });

  /** A receiver with its own webhook on a namespace of its own; returns a push function. */
  async function setUp(name: string, respond: Responder, webhook: { timeout?: number } = {}) {
    const receiver = await startReceiver(respond);
    receivers.push(receiver);
    await server.client.registerWebhook({ namespace: "retries", event: name, url: receiver.url, ...webhook });
    const push = async (ttlSeconds = 0) =>
      (await server.client.pushEvent({ namespace: "retries", event: name, payload: "{}", ttlSeconds })).eventId;
    return { receiver, push };
  }

  const attempts = (deliveryId: string) =>
    server.db.sql<AttemptRow[]>`
      select attempt_number, response_code, response_body, error_message, duration_ms
      from delivery_attempts where delivery_id = ${deliveryId} order by attempt_number`;

  it("retries a failing receiver until it succeeds, recording every attempt", async () => {
    const { receiver, push } = await setUp("flaky", (_req, i) =>
      i < 2 ? { status: 500, body: "x".repeat(100) } : 200,
    );
    const delivery = await waitForDelivery(server.client, await push(), "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    assert.equal(delivery.attemptCount, 3);
    assert.equal(delivery.responseCode, 200);
    assert.equal(delivery.errorMessage, "");
    assert.equal(receiver.requests.length, 3);
    const ids = new Set(receiver.requests.map((r) => r.headers["webhook-id"]));
    assert.equal(ids.size, 1, "webhook-id stays the same across retries");

    const rows = await attempts(delivery.id);
    assert.deepEqual(
      rows.map((r) => [r.attempt_number, r.response_code, r.error_message]),
      [
        [1, 500, "receiver answered HTTP 500"],
        [2, 500, "receiver answered HTTP 500"],
        [3, 200, null],
      ],
    );
    assert.equal(rows[0]?.response_body, "x".repeat(32), "response bodies are truncated to the limit");
  });

  it("retries after a timeout", async () => {
    const { receiver, push } = await setUp("slow", (_req, i) => (i === 0 ? "hang" : 200), { timeout: 1 });
    const delivery = await waitForDelivery(server.client, await push(), "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    assert.equal(delivery.attemptCount, 2);
    assert.equal(receiver.requests.length, 2);
    const [first] = await attempts(delivery.id);
    assert.equal(first?.error_message, "timed out after 1s");
    assert.equal(first.response_code, null);
    assert.ok(first.duration_ms >= 900, "the attempt lasted until the timeout");
  });

  it("gives up after max attempts with FAILED", async () => {
    const { receiver, push } = await setUp("broken", () => 502);
    const delivery = await waitForDelivery(server.client, await push(), "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_FAILED);
    assert.equal(delivery.attemptCount, 4);
    assert.equal(delivery.maxAttempts, 4);
    assert.equal(delivery.responseCode, 502);
    assert.equal(delivery.errorMessage, "receiver answered HTTP 502");
    assert.equal(delivery.nextAttemptAt, undefined);
    assert.ok(delivery.completedAt);
    assert.equal(receiver.requests.length, 4);
    assert.equal((await attempts(delivery.id)).length, 4);
  });

  it("records connection failures and retries them", async () => {
    const receiver = await startReceiver();
    const url = receiver.url;
    await receiver.close(); // nothing listens there any more
    await server.client.registerWebhook({ namespace: "retries", event: "refused", url });
    const { eventId } = await server.client.pushEvent({ namespace: "retries", event: "refused", payload: "1" });
    const delivery = await waitForDelivery(server.client, eventId, "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_FAILED);
    assert.equal(delivery.attemptCount, 4);
    assert.match(delivery.errorMessage, /ECONNREFUSED/);
  });

  it("honours Retry-After on 429 and 503", async () => {
    const { receiver, push } = await setUp("throttled", (_req, i) =>
      i === 0 ? { status: 429, headers: { "retry-after": "1" } } : 200,
    );
    const eventId = await push();
    const retrying = await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_RETRYING);
    const gap = (retrying.nextAttemptAt?.getTime() ?? 0) - (retrying.lastAttemptAt?.getTime() ?? 0);
    assert.ok(gap >= 1000, `next attempt scheduled ${gap}ms after the last, not before Retry-After`);
    const delivery = await waitForDelivery(server.client, eventId, "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    assert.equal(receiver.requests.length, 2);
  });

  it("expires a delivery whose next attempt would fall past the event's TTL", async () => {
    const { receiver, push } = await setUp("expiring", () => ({ status: 503, headers: { "retry-after": "5" } }));
    const delivery = await waitForDelivery(server.client, await push(2), "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_EXPIRED);
    assert.equal(delivery.attemptCount, 1);
    assert.equal(delivery.responseCode, 503);
    assert.equal(receiver.requests.length, 1);
  });

  it("expires a delivery whose event ran out of time while it waited for its next attempt", async () => {
    const { receiver, push } = await setUp("late", (_req, i) =>
      i === 0 ? { status: 429, headers: { "retry-after": "1" } } : 200,
    );
    const eventId = await push();
    await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_RETRYING);
    // As if the retry ran late (a backlog, an outage) and the TTL passed meanwhile.
    await server.db.sql`update event_records set expires_at = now() - interval '1 second' where id = ${eventId}`;
    const delivery = await waitForDelivery(server.client, eventId, "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_EXPIRED);
    assert.equal(delivery.attemptCount, 1);
    assert.equal(delivery.errorMessage, "the event expired before attempt 2");
    assert.equal(receiver.requests.length, 1, "nothing is sent after expiry");
  });
});
