import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Code,
  createClient,
  DeliveryStatus,
  HttpQueueError,
  verifyWebhook,
  verifyWebhookSignature,
  WebhookVerificationError,
  type HttpQueueClient,
  type WebhookVerificationFailure,
} from "@httpqueue/sdk";
import { startReceiver, type ReceivedRequest, type Receiver } from "@httpqueue/testkit";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { startTestServer, waitForDelivery, type TestServer } from "./helpers/server.js";

/**
 * The SDK against the real service: every method, how server errors reach
 * callers, and verifyWebhook on deliveries the server really sent.
 */

const MISSING_ID = "0190a0d4-0000-7000-8000-000000000000";

function rejectsWith(promise: Promise<unknown>, code: Code, details: RegExp) {
  return assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HttpQueueError, `expected an HttpQueueError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.codeName, Code[code]);
    assert.match(err.details, details);
    assert.equal(err.message, `${Code[code]}: ${err.details}`);
    assert.ok(err.cause instanceof Error, "the grpc-js error is kept as the cause");
    assert.equal((err.cause as { code?: unknown }).code, code);
    return true;
  });
}

function rejectsDelivery(fn: () => unknown, reason: WebhookVerificationFailure) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WebhookVerificationError, `expected a WebhookVerificationError, got ${String(err)}`);
    assert.equal(err.reason, reason);
    return true;
  });
}

describe("SDK against the real server", () => {
  let server: TestServer;
  let receiver: Receiver;
  let client: HttpQueueClient;

  before(async () => {
    server = await startTestServer();
    receiver = await startReceiver();
    client = createClient({ address: server.app.address, userAgent: "sdk-test/1" });
  });
  after(async () => {
    client.close();
    await receiver.close();
    await server.stop();
  });

  it("registers, updates, lists and unregisters webhooks", async () => {
    const registered = await client.registerWebhook({
      namespace: "sdk",
      event: "crud",
      url: `${receiver.url}/crud`,
      headers: { "X-Team": "billing" },
      active: false,
      description: "made by the SDK test",
    });
    assert.match(registered.signingSecret, /^whsec_/);
    assert.equal(registered.webhook?.active, false);
    assert.ok(registered.webhook.createdAt instanceof Date);

    const { webhook } = await client.updateWebhook({
      webhookId: registered.webhookId,
      timeout: 5,
      headers: { values: {} },
      active: true,
    });
    assert.deepEqual(
      { timeout: webhook?.timeout, headers: webhook?.headers, active: webhook?.active, url: webhook?.url },
      { timeout: 5, headers: {}, active: true, url: `${receiver.url}/crud` },
    );

    const ids = [registered.webhookId];
    for (let i = 0; i < 4; i++) {
      ids.push((await client.registerWebhook({ namespace: "sdk-list", event: `e${i}`, url: receiver.url })).webhookId);
    }
    const page = await client.listWebhooks({ namespace: "sdk-list", pageSize: 3 });
    assert.equal(page.webhooks.length, 3);
    assert.notEqual(page.nextPageToken, "");
    const listed = [];
    for await (const w of client.listWebhooksAsync({ namespace: "sdk-list", pageSize: 1 })) listed.push(w.id);
    assert.deepEqual(listed, ids.slice(1));

    const { cancelledDeliveries } = await client.unregisterWebhook({ webhookId: registered.webhookId });
    assert.equal(cancelledDeliveries, 0);
    await rejectsWith(client.unregisterWebhook({ webhookId: registered.webhookId }), Code.NOT_FOUND, /not found/);
  });

  it("pushes events (JSON-encoding objects, honouring idempotency keys) and reports their status", async () => {
    const { webhookId } = await client.registerWebhook({ namespace: "sdk", event: "push", url: `${receiver.url}/p` });
    const payload = { user: { id: 7, name: "Zoë" }, tags: ["a", "b"] };
    const pushed = await client.pushEvent({
      namespace: "sdk",
      event: "push",
      payload,
      metadata: { source: "test" },
      idempotencyKey: "sdk-push-1",
      ttlSeconds: 120,
    });
    assert.equal(pushed.duplicate, false);
    const again = await client.pushEvent({ namespace: "sdk", event: "push", payload, idempotencyKey: "sdk-push-1" });
    assert.deepEqual(again, { eventId: pushed.eventId, duplicate: true });

    const delivery = await waitForDelivery(client, pushed.eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const received = receiver.requests.find((r) => r.headers["webhook-id"] === delivery.id);
    assert.equal(received?.body, JSON.stringify(payload), "delivered byte for byte as encoded");

    const byEvent = await client.getWebhookStatus({ eventId: pushed.eventId });
    assert.equal(byEvent.event?.payload, JSON.stringify(payload));
    assert.deepEqual(byEvent.event.metadata, { source: "test" });
    assert.equal(byEvent.event.ttlSeconds, 120);
    assert.deepEqual(
      byEvent.deliveries.map((d) => [d.webhookId, d.status]),
      [[webhookId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED]],
    );

    const second = await client.pushEvent({ namespace: "sdk", event: "push", payload: '{"n":2}' });
    await waitForDelivery(client, second.eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const byWebhook = await client.getWebhookStatus({ webhookId, pageSize: 1 });
    assert.equal(byWebhook.webhook?.id, webhookId);
    assert.deepEqual(byWebhook.counts, [{ status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, count: 2 }]);
    assert.equal(byWebhook.deliveries[0]?.eventId, second.eventId, "newest first");
    const generated = await client.getWebhookStatus({ identifier: { $case: "webhookId", value: webhookId } });
    assert.equal(generated.deliveries.length, 2);

    const all = [];
    for await (const d of client.listDeliveriesAsync({ webhookId, pageSize: 1 })) all.push(d.eventId);
    assert.deepEqual(all, [second.eventId, pushed.eventId]);
  });

  it("maps bad input to INVALID_ARGUMENT and unknown ids to NOT_FOUND, with the server's message", async () => {
    await rejectsWith(
      client.registerWebhook({ namespace: "sdk", event: "bad", url: "ftp://example.test" }),
      Code.INVALID_ARGUMENT,
      /^url: must be an absolute http or https URL$/,
    );
    await rejectsWith(
      client.pushEvent({ namespace: "sdk", event: "bad", payload: "{not json" }),
      Code.INVALID_ARGUMENT,
      /^payload: must be valid JSON/,
    );
    await rejectsWith(
      client.pushEvent({ namespace: "sdk", event: "bad" }),
      Code.INVALID_ARGUMENT,
      /^payload: is required/,
    );
    await rejectsWith(client.listWebhooks({ pageToken: "nope" }), Code.INVALID_ARGUMENT, /^page_token: /);
    await rejectsWith(client.getWebhookStatus({}), Code.INVALID_ARGUMENT, /^identifier: /);
    await rejectsWith(
      client.getWebhookStatus({ webhookId: "w-1" }),
      Code.INVALID_ARGUMENT,
      /^webhook_id: .*not a valid id/,
    );
    await rejectsWith(client.getWebhookStatus({ webhookId: MISSING_ID }), Code.NOT_FOUND, /^webhook .* not found$/);
    await rejectsWith(client.getWebhookStatus({ eventId: MISSING_ID }), Code.NOT_FOUND, /^event .* not found$/);
    await rejectsWith(client.updateWebhook({ webhookId: MISSING_ID, active: false }), Code.NOT_FOUND, /not found/);
  });

  it("applies a per-call deadline", async () => {
    // A deadline already spent: the call fails on the client, whatever the server's speed.
    await assert.rejects(client.listWebhooks({}, { deadlineMs: 0.001 }), { code: Code.DEADLINE_EXCEEDED });
    assert.ok(await client.listWebhooks({}, { deadlineMs: 30_000 }));
  });

  describe("verifyWebhook on real deliveries", () => {
    let secret: string;
    let delivered: ReceivedRequest;

    before(async () => {
      const registered = await client.registerWebhook({ namespace: "sdk", event: "signed", url: `${receiver.url}/s` });
      secret = registered.signingSecret;
      const { eventId } = await client.pushEvent({
        namespace: "sdk",
        event: "signed",
        payload: { order: 1, note: "ünïcödé" },
      });
      const delivery = await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      const request = receiver.requests.find((r) => r.headers["webhook-id"] === delivery.id);
      assert.ok(request);
      delivered = request;
    });

    it("accepts the delivery with Node headers, Fetch Headers and raw bytes, as the standardwebhooks library does", () => {
      const expected = { order: 1, note: "ünïcödé" };
      assert.deepEqual(verifyWebhook(delivered.body, delivered.headers, secret), expected);
      const fetchHeaders = new Headers();
      for (const [name, value] of Object.entries(delivered.headers)) {
        if (typeof value === "string") fetchHeaders.set(name, value);
      }
      assert.deepEqual(verifyWebhook(Buffer.from(delivered.body), fetchHeaders, secret), expected);
      const plain = Object.fromEntries(Object.entries(delivered.headers).map(([k, v]) => [k, String(v)]));
      assert.deepEqual(new StandardWebhook(secret).verify(delivered.body, plain), expected);
    });

    it("rejects a tampered body, a wrong secret and an old timestamp", () => {
      rejectsDelivery(
        () => verifyWebhook(delivered.body.replace('"order":1', '"order":2'), delivered.headers, secret),
        "no_matching_signature",
      );
      const other = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
      rejectsDelivery(() => verifyWebhook(delivered.body, delivered.headers, other), "no_matching_signature");
      const sentAt = Number(delivered.headers["webhook-timestamp"]) * 1000;
      rejectsDelivery(
        () => verifyWebhook(delivered.body, delivered.headers, secret, { now: sentAt + 301_000 }),
        "timestamp_too_old",
      );
      assert.ok(verifyWebhook(delivered.body, delivered.headers, secret, { now: sentAt + 299_000 }));
    });

    it("checks the signature of a GET delivery, which has no body", async () => {
      const registered = await client.registerWebhook({
        namespace: "sdk",
        event: "get",
        url: `${receiver.url}/g`,
        method: "GET",
      });
      const { eventId } = await client.pushEvent({ namespace: "sdk", event: "get", payload: { a: 1 } });
      const delivery = await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      const request = receiver.requests.find((r) => r.headers["webhook-id"] === delivery.id);
      assert.equal(request?.method, "GET");
      const verified = verifyWebhookSignature(request.body, request.headers, registered.signingSecret);
      assert.equal(verified.id, delivery.id);
      rejectsDelivery(() => verifyWebhook(request.body, request.headers, registered.signingSecret), "invalid_body");
    });
  });
});
