import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Server, status, type ServiceError } from "@grpc/grpc-js";
import { hasLoneSurrogate, WebhookServiceService } from "@httpqueue/proto";
import { Code, createClient, DeliveryStatus, HttpQueueError } from "@httpqueue/sdk";
import { listenGrpc, type Receiver, startReceiver } from "@httpqueue/testkit";
import { ApiError, MAX_DETAILS_LENGTH, toServiceError, wireText } from "../src/api/errors.js";
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

describe("the one place errors become statuses", () => {
  const texts: Record<string, string> = {
    "a lone high surrogate": "bad \uD83D here",
    "a lone low surrogate": "\uDE80 first",
    "control characters": "a\u0000b\u0001c\u001b[31md\u007fe\u009b",
    "a very long string": "é".repeat(200_000),
    "line breaks": "one\r\ntwo",
  };

  it("sends well-formed, bounded text whatever it is given, through a real gRPC server and client", async () => {
    const server = new Server();
    let next = "";
    server.addService(WebhookServiceService, {
      ...Object.fromEntries(
        Object.keys(WebhookServiceService).map((name) => [
          name,
          (_call: unknown, callback: (err: Partial<ServiceError>) => void) => {
            callback(toServiceError(new ApiError(status.INVALID_ARGUMENT, next)).error);
          },
        ]),
      ),
    });
    const address = await listenGrpc(server);
    const client = createClient({ address });
    try {
      for (const [what, text] of Object.entries(texts)) {
        next = `payload: ${text}`;
        const err = await client.listWebhooks({}).catch((e: unknown) => e);
        assert.ok(err instanceof HttpQueueError, what);
        assert.equal(err.code, Code.INVALID_ARGUMENT, `${what}: ${err.message}`);
        assert.ok(err.details.startsWith("payload: "), what);
        assert.ok(err.details.length <= MAX_DETAILS_LENGTH, `${what}: ${err.details.length} characters`);
        // eslint-disable-next-line no-control-regex -- control characters are what it looks for
        assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(err.details), `${what}: no control characters`);
        assert.ok(!hasLoneSurrogate(err.details), `${what}: well-formed`);
      }
      assert.equal(wireText("a\u0000b"), "a\\u0000b", "control characters are shown escaped");
      assert.equal(wireText("x\uD83D"), "x\uFFFD", "a lone surrogate becomes U+FFFD");
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
