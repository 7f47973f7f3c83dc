import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "@httpqueue/sdk";
import { Webhook } from "standardwebhooks";
import { eventually, type Receiver, startReceiver } from "@httpqueue/testkit";
import { MAX_INLINE_FANOUT } from "../src/db/events.js";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

describe("delivery", () => {
  let server: TestServer;
  let receiver: Receiver;

  before(async () => {
    server = await startTestServer();
    receiver = await startReceiver();
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  it("delivers a pushed event with the webhook's method, headers, body and a valid signature", async () => {
    const { client } = server;
    const registered = await client.registerWebhook({
      namespace: "user",
      event: "signup",
      url: `${receiver.url}/hooks/signup?src=test`,
      method: "PUT",
      headers: { Authorization: "Bearer receiver-token", "X-Event-Type": "user-signup" },
      description: "signups",
    });
    assert.match(registered.signingSecret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(registered.webhook?.active, true, "a webhook is active unless registered otherwise");
    assert.equal(registered.webhook.timeout, 30);

    const payload = '{"user_id": "12345", "email": "user@example.com"}';
    const pushed = await client.pushEvent({ namespace: "user", event: "signup", payload });
    assert.equal(pushed.duplicate, false);

    const [request] = await receiver.waitForRequests(1);
    assert.ok(request);
    assert.equal(request.method, "PUT");
    assert.equal(request.path, "/hooks/signup?src=test");
    assert.equal(request.body, payload, "the payload is delivered byte for byte");
    assert.equal(request.headers["content-type"], "application/json");
    assert.equal(request.headers.authorization, "Bearer receiver-token");
    assert.equal(request.headers["x-event-type"], "user-signup");
    assert.match(String(request.headers["user-agent"]), /^httpqueue\//);

    const headers = {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    };
    const verified = new Webhook(registered.signingSecret).verify(request.body, headers);
    assert.deepEqual(verified, JSON.parse(payload));
    assert.throws(() => new Webhook(registered.signingSecret).verify(`${request.body} `, headers), /signature/i);

    const delivery = await waitForDelivery(client, pushed.eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const status = await client.getWebhookStatus({ identifier: { $case: "eventId", value: pushed.eventId } });
    assert.equal(delivery.id, headers["webhook-id"], "webhook-id is the delivery id");
    assert.equal(delivery.attemptCount, 1);
    assert.equal(delivery.responseCode, 200);
    assert.equal(delivery.responseBody, "ok");
    assert.ok(delivery.completedAt instanceof Date);
    assert.equal(status.event?.payload, payload);
  });

  it("fans an event out to every active webhook of its namespace/event and to no other", async () => {
    const { client } = server;
    const hooks = await Promise.all(
      ["a", "b", "c"].map((name) =>
        client.registerWebhook({ namespace: "order", event: "created", url: `${receiver.url}/fanout/${name}` }),
      ),
    );
    const inactive = await client.registerWebhook({
      namespace: "order",
      event: "created",
      url: `${receiver.url}/fanout/inactive`,
      active: false,
    });
    await client.registerWebhook({ namespace: "order", event: "deleted", url: `${receiver.url}/fanout/other-event` });
    await client.registerWebhook({
      namespace: "shop",
      event: "created",
      url: `${receiver.url}/fanout/other-namespace`,
    });

    const pushed = await client.pushEvent({ namespace: "order", event: "created", payload: '{"order_id":1}' });
    const status = await eventually(async () => {
      const s = await client.getWebhookStatus({ identifier: { $case: "eventId", value: pushed.eventId } });
      const done = s.deliveries.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      return done.length === 3 ? s : undefined;
    });
    assert.deepEqual(status.deliveries.map((d) => d.webhookId).sort(), hooks.map((h) => h.webhookId).sort());
    const paths = receiver.requests
      .filter((r) => r.path.startsWith("/fanout/"))
      .map((r) => r.path)
      .sort();
    assert.deepEqual(paths, ["/fanout/a", "/fanout/b", "/fanout/c"]);

    const untouched = await client.getWebhookStatus({ identifier: { $case: "webhookId", value: inactive.webhookId } });
    assert.equal(untouched.deliveries.length, 0);
    assert.deepEqual(untouched.counts, []);
  });

  it(`delivers an event with more than ${MAX_INLINE_FANOUT} webhooks through its fan-out job, once to each`, async () => {
    const { client } = server;
    const count = MAX_INLINE_FANOUT + 5;
    for (let i = 0; i < count; i++) {
      await client.registerWebhook({ namespace: "order", event: "wide", url: `${receiver.url}/wide/${i}` });
    }
    const pushed = await client.pushEvent({ namespace: "order", event: "wide", payload: "{}" });
    await eventually(async () => {
      const done = [];
      for await (const d of client.listDeliveriesAsync({ eventId: pushed.eventId })) {
        if (d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED) done.push(d);
      }
      return done.length === count ? done : undefined;
    });
    const paths = receiver.requests.filter((r) => r.path.startsWith("/wide/")).map((r) => r.path);
    assert.equal(paths.length, count, "one request per webhook");
    assert.equal(new Set(paths).size, count);
  });

  it("sends no body with GET", async () => {
    const { client } = server;
    await client.registerWebhook({ namespace: "ping", event: "get", url: `${receiver.url}/get`, method: "get" });
    const before = receiver.requests.length;
    await client.pushEvent({ namespace: "ping", event: "get", payload: '{"x":1}' });
    const requests = await receiver.waitForRequests(before + 1);
    const request = requests.at(-1);
    assert.equal(request?.method, "GET");
    assert.equal(request.body, "");
    assert.equal(request.headers["content-type"], undefined);
    assert.ok(request.headers["webhook-signature"]);
  });

  it("accepts an event that no webhook listens to", async () => {
    const pushed = await server.client.pushEvent({ namespace: "nobody", event: "listens", payload: "[]" });
    const status = await server.client.getWebhookStatus({ identifier: { $case: "eventId", value: pushed.eventId } });
    assert.equal(status.event?.id, pushed.eventId);
    assert.deepEqual(status.deliveries, []);
  });
});
