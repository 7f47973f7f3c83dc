import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Writable } from "node:stream";
import { DeliveryStatus, HttpQueueError } from "@httpqueue/sdk";
import {
  eventually,
  type Receiver,
  startReceiver,
  startTcpProxy,
  type TcpProxy,
  type TestDatabase,
} from "@httpqueue/testkit";
import { createLogger, prettyDestination } from "../src/observability/logger.js";
import { createMigratedDatabase, startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

type Line = Record<string, unknown>;

describe("logs", () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  let receiver: Receiver;
  const lines: string[] = [];
  const parsed = () => lines.map((l) => JSON.parse(l) as Line);

  before(async () => {
    // The first attempt fails, the second succeeds: both kinds of attempt line.
    receiver = await startReceiver((_req, i) => (i === 0 ? 503 : 200));
    // The database through a proxy, to cut it off.
    db = await createMigratedDatabase();
    const url = new URL(db.url);
    proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    url.host = `127.0.0.1:${proxy.port}`;
    server = await startTestServer({ LOG_LEVEL: "info", DATABASE_URL: url.toString() }, db, {
      write: (line) => lines.push(line),
    });
  });
  after(async () => {
    await server.stop();
    await receiver.close();
    await proxy.close();
    await db.drop();
  });

  it("a log line of a delivery to a webhook with an Authorization header does not contain its value", async () => {
    const authorization = "Bearer attempt-token-never-logged";
    const { webhookId } = await server.client.registerWebhook({
      namespace: "logs",
      event: "auth",
      url: receiver.url,
      headers: { Authorization: authorization },
    });
    const { eventId } = await server.client.pushEvent({ namespace: "logs", event: "auth", payload: "{}" });
    const delivery = await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const [sent] = await receiver.waitForRequests(1);
    assert.equal(sent?.headers.authorization, authorization, "the header was sent with the delivery");

    const attemptLines = lines.filter((l) => {
      const line = JSON.parse(l) as Line;
      return line.msg === "delivery attempt" && line.webhookId === webhookId;
    });
    assert.equal(attemptLines.length, 2, "one line per attempt");
    for (const line of attemptLines) {
      assert.ok(!line.includes("attempt-token-never-logged"), `the Authorization value is in: ${line}`);
    }

    // And the lines carry what an operator needs.
    const [first, second] = attemptLines.map((l) => JSON.parse(l) as Line) as [Line, Line];
    assert.deepEqual(
      { ...first, time: undefined, durationMs: undefined, nextAttemptAt: undefined },
      {
        level: "info",
        time: undefined,
        service: "httpqueue",
        deliveryId: delivery.id,
        webhookId,
        eventId,
        attempt: 1,
        status: "retrying",
        responseCode: 503,
        durationMs: undefined,
        error: "receiver answered HTTP 503",
        nextAttemptAt: undefined,
        msg: "delivery attempt",
      },
    );
    assert.equal(typeof first.durationMs, "number");
    assert.ok(!Number.isNaN(Date.parse(first.nextAttemptAt as string)), "a retry says when it runs");
    assert.equal(second.attempt, 2);
    assert.equal(second.status, "succeeded");
    assert.equal(second.responseCode, 200);
    assert.equal(typeof second.durationMs, "number");
    assert.equal(second.nextAttemptAt, undefined);
  });

  it("writes one line per RPC with its method, status code and duration", async () => {
    await assert.rejects(server.client.pushEvent({ namespace: "logs", event: "rpc", payload: "[" }));
    const rpc = parsed().filter((l) => l.msg === "rpc");
    const failed = rpc.find((l) => l.rpc === "PushEvent" && l.code === "INVALID_ARGUMENT");
    assert.ok(failed, "the failed call is logged");
    assert.equal(typeof failed.durationMs, "number");
    assert.ok(rpc.some((l) => l.rpc === "RegisterWebhook" && l.code === "OK"));
  });

  it("logs a call failed for want of the database at warn (the caller retries), an internal error at error", async () => {
    const failures = () => parsed().filter((l) => l.msg === "rpc failed");
    await proxy.cut();
    try {
      await assert.rejects(
        server.client.pushEvent({ namespace: "logs", event: "outage", payload: "{}" }, { deadlineMs: 10_000 }),
        (err: unknown) => err instanceof HttpQueueError && err.codeName === "UNAVAILABLE",
      );
    } finally {
      await proxy.restore();
    }
    const unavailable = failures().filter((l) => l.rpc === "PushEvent");
    assert.ok(unavailable.length > 0, "the failure is logged");
    assert.deepEqual(new Set(unavailable.map((l) => l.level)), new Set(["warn"]));
    await eventually(() => server.client.listWebhooks({ namespace: "logs" }), 15_000, "calls served again");

    await db.sql`alter table webhook_registrations rename to webhook_registrations_away`;
    try {
      await assert.rejects(
        server.client.listWebhooks({ namespace: "logs" }),
        (err: unknown) => err instanceof HttpQueueError && err.codeName === "INTERNAL",
      );
    } finally {
      await db.sql`alter table webhook_registrations_away rename to webhook_registrations`;
    }
    const internal = failures().filter((l) => l.rpc === "ListWebhooks");
    assert.equal(internal.length, 1, "the failure is logged");
    assert.equal(internal[0]?.level, "error");
  });

  it("redacts secrets in pretty output too", () => {
    let out = "";
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        out += chunk.toString();
        done();
      },
    });
    const logger = createLogger("info", prettyDestination(sink));
    logger.info(
      { headers: { Authorization: "Bearer pretty-secret" }, webhook: { signingSecret: "whsec_pretty" } },
      "pretty line",
    );
    assert.match(out, /INFO.*pretty line/);
    assert.doesNotMatch(out, /^\{/, "not JSON");
    assert.ok(!out.includes("pretty-secret") && !out.includes("whsec_pretty"), out);
  });
});
