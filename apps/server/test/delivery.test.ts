import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "@httpqueue/sdk";
import { Webhook } from "standardwebhooks";
import { eventually, type Receiver, startReceiver } from "@httpqueue/testkit";
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

describe("first attempts made directly", () => {
  const slowReceiver = () => startReceiver(() => ({ status: 200, delayMs: 1_500 }));

  async function pushThree(server: TestServer, url: string, namespace: string) {
    const { client } = server;
    await client.registerWebhook({ namespace, event: "slow", url, timeout: 5 });
    const pushed = [];
    for (let i = 0; i < 3; i++)
      pushed.push(await client.pushEvent({ namespace, event: "slow", payload: `{"i":${i}}` }));
    return pushed.map((p) => p.eventId);
  }

  async function deliveredOnce(server: TestServer, receiver: Receiver, eventIds: string[]) {
    for (const eventId of eventIds) {
      const delivery = await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      assert.equal(delivery.attemptCount, 1);
    }
    assert.deepEqual(receiver.requests.map((r) => r.body).sort(), ['{"i":0}', '{"i":1}', '{"i":2}'], "once each");
    const [left] = await server.db.sql<{ n: number }[]>`
      select count(*)::int as n from graphile_worker.jobs where task_identifier = 'httpqueue.deliver'`;
    assert.equal(left?.n, 0, "no safety-net job outlives its attempt");
  }

  it("leaves to the queue a first attempt that waited too long for its turn", async () => {
    // One attempt at a time, each taking 1.5 s: the second and third wait
    // longer than half the grace and go back to the queue.
    const lines: string[] = [];
    const server = await startTestServer(
      { WORKER_CONCURRENCY: "1", DIRECT_DISPATCH_GRACE: "2s", LOG_LEVEL: "debug" },
      undefined,
      {
        write: (line) => lines.push(line),
      },
    );
    const receiver = await slowReceiver();
    try {
      const eventIds = await pushThree(server, receiver.url, "direct-late");
      await deliveredOnce(server, receiver, eventIds);
      assert.ok(
        lines.some((l) => l.includes("first attempts left to the queue") && l.includes("waited too long")),
        "the late ones went back to the queue",
      );
    } finally {
      await server.stop();
      await receiver.close();
    }
  });

  it("hands the first attempts still waiting at a stop back to the queue, for the next server", async () => {
    const first = await startTestServer({ WORKER_CONCURRENCY: "1" });
    const receiver = await slowReceiver();
    let next: TestServer | undefined;
    try {
      const eventIds = await pushThree(first, receiver.url, "direct-stop");
      await receiver.waitForRequests(1);
      await first.app.stop();
      // Their jobs were queued for a minute later: due now, or this would time out.
      next = await startTestServer({}, first.db);
      await deliveredOnce(next, receiver, eventIds);
    } finally {
      await next?.stop();
      await first.stop();
      await receiver.close();
    }
  });
});
