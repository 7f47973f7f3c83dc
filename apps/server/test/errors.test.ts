import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, DeliveryStatus, HttpQueueError } from "@httpqueue/sdk";
import { type Receiver, startReceiver } from "@httpqueue/testkit";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

describe("unexpected errors and logs", () => {
  let server: TestServer;
  let receiver: Receiver;
  const lines: string[] = [];

  before(async () => {
    receiver = await startReceiver((_req, i) => (i === 0 ? 500 : 200));
    server = await startTestServer({ LOG_LEVEL: "trace" }, undefined, { write: (line) => lines.push(line) });
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  it("answers INTERNAL with a generic message, and logs the cause", async () => {
    await server.db.sql`alter table webhook_registrations rename to webhook_registrations_away`;
    try {
      await assert.rejects(
        server.client.registerWebhook({
          namespace: "err",
          event: "e",
          url: receiver.url,
          headers: { Authorization: "Bearer never-log-me" },
        }),
        (err: unknown) => {
          assert.ok(err instanceof HttpQueueError);
          assert.equal(err.code, Code.INTERNAL);
          assert.equal(err.details, "internal error");
          return true;
        },
      );
    } finally {
      await server.db.sql`alter table webhook_registrations_away rename to webhook_registrations`;
    }
    const failure = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "rpc failed");
    assert.ok(failure, "the failure is logged");
    assert.equal((failure.err as { code?: string }).code, "42P01", "with the SQLSTATE of its cause");
  });

  it("logs no signing secret and no custom header value, however far the work goes", async () => {
    const { client } = server;
    const { signingSecret, webhookId } = await client.registerWebhook({
      namespace: "err",
      event: "logged",
      url: receiver.url,
      headers: { Authorization: "Bearer never-log-me", "X-Api-Key": "key-never-log-me" },
    });
    const { eventId } = await client.pushEvent({ namespace: "err", event: "logged", payload: "{}" });
    await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    await client.updateWebhook({ webhookId, headers: { values: { Authorization: "Bearer new-never-log-me" } } });
    await client.unregisterWebhook({ webhookId });

    const log = lines.join("");
    assert.match(log, /"msg":"delivery attempt"/, "deliveries are logged");
    assert.match(log, /"rpc":"RegisterWebhook"/, "calls are logged");
    for (const secret of [signingSecret, signingSecret.slice(6), "never-log-me", "key-never-log-me"]) {
      assert.ok(!log.includes(secret), `a log line contains ${secret.slice(0, 12)}…`);
    }
  });
});
