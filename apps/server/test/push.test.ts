import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, HttpQueueError, type PushEventRequest } from "@httpqueue/sdk";
import type { DeepPartial } from "@httpqueue/proto";
import { eventually, type Receiver, startReceiver } from "@httpqueue/testkit";
import { startTestServer, type TestServer } from "./helpers/server.js";

describe("PushEvent", () => {
  let server: TestServer;
  let receiver: Receiver;
  before(async () => {
    server = await startTestServer({ MAX_PAYLOAD_BYTES: "1024", MAX_TTL_SECONDS: "3600", DEFAULT_TTL_SECONDS: "600" });
    receiver = await startReceiver();
    await server.client.registerWebhook({ namespace: "push", event: "idem", url: receiver.url });
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  it("stores the event with its TTL, metadata and key", async () => {
    const { client } = server;
    const { eventId } = await client.pushEvent({
      namespace: "push",
      event: "stored",
      payload: '{"a":[1,2,3]}',
      metadata: { source: "api", region: "eu-1" },
      idempotencyKey: "stored-1",
    });
    const { event } = await client.getWebhookStatus({ identifier: { $case: "eventId", value: eventId } });
    assert.equal(event?.payload, '{"a":[1,2,3]}');
    assert.deepEqual(event.metadata, { source: "api", region: "eu-1" });
    assert.equal(event.idempotencyKey, "stored-1");
    assert.equal(event.ttlSeconds, 600, "0 takes DEFAULT_TTL_SECONDS");
    assert.equal((event.expiresAt?.getTime() ?? 0) - (event.createdAt?.getTime() ?? 0), 600_000);

    const { eventId: short } = await client.pushEvent({
      namespace: "push",
      event: "stored",
      payload: "1",
      ttlSeconds: 5,
    });
    const status = await client.getWebhookStatus({ identifier: { $case: "eventId", value: short } });
    assert.equal(status.event?.ttlSeconds, 5);
  });

  it("returns the first event for a repeated idempotency key and delivers once", async () => {
    const { client } = server;
    const first = await client.pushEvent({ namespace: "push", event: "idem", payload: "{}", idempotencyKey: "k-1" });
    const again = await client.pushEvent({ namespace: "push", event: "idem", payload: "{}", idempotencyKey: "k-1" });
    assert.deepEqual(first, { eventId: first.eventId, duplicate: false });
    assert.deepEqual(again, { eventId: first.eventId, duplicate: true });

    const other = await client.pushEvent({ namespace: "other", event: "idem", payload: "{}", idempotencyKey: "k-1" });
    assert.equal(other.duplicate, false, "keys are per namespace");
    assert.notEqual(other.eventId, first.eventId);

    await receiver.waitForRequests(1);
    await eventually(async () => {
      const [row] = await server.db.sql<{ n: number }[]>`select count(*)::int as n from graphile_worker.jobs`;
      return row?.n === 0 ? true : undefined;
    });
    assert.equal(receiver.requests.filter((r) => r.body === "{}").length, 1);
  });

  it("concurrent pushes with one key store one event", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        server.client.pushEvent({ namespace: "push", event: "race", payload: "{}", idempotencyKey: "race-1" }),
      ),
    );
    const ids = new Set(results.map((r) => r.eventId));
    assert.equal(ids.size, 1);
    assert.equal(results.filter((r) => !r.duplicate).length, 1);
    const [row] = await server.db.sql<{ n: number }[]>`
      select count(*)::int as n from event_records where idempotency_key = 'race-1'`;
    assert.equal(row?.n, 1);
  });

  it("rejects bad input with INVALID_ARGUMENT naming the field, and stores nothing", async () => {
    const valid: DeepPartial<PushEventRequest> = { namespace: "push", event: "bad", payload: "{}" };
    const cases: [DeepPartial<PushEventRequest>, RegExp][] = [
      [{ namespace: "" }, /^namespace: is required/],
      [{ namespace: "a:b" }, /^namespace: /],
      [{ event: "" }, /^event: is required/],
      [{ event: "e".repeat(200) }, /^event: must be at most 128/],
      [{ payload: "" }, /^payload: is required/],
      [{ payload: "{not json" }, /^payload: must be valid JSON/],
      [{ payload: "{} {}" }, /^payload: must be valid JSON/],
      [{ payload: JSON.stringify({ big: "x".repeat(1100) }) }, /^payload: is \d+ bytes; the limit is 1024/],
      [{ ttlSeconds: -5 }, /^ttl_seconds: must be between 1 and 3600/],
      [{ ttlSeconds: 3601 }, /^ttl_seconds: must be between 1 and 3600/],
      [{ metadata: { "": "x" } }, /^metadata: keys must not be empty/],
      [{ metadata: { k: "v".repeat(1025) } }, /^metadata\["k"\]: must be at most 1024/],
      [{ metadata: { k: "a\u0000" } }, /^metadata: must not contain NUL/],
      [
        { metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) },
        /^metadata: must have at most 32/,
      ],
      [{ idempotencyKey: "has space" }, /^idempotency_key: must be 1 to 255 visible ASCII/],
      [{ idempotencyKey: "k".repeat(256) }, /^idempotency_key: /],
    ];
    for (const [change, message] of cases) {
      await assert.rejects(server.client.pushEvent({ ...valid, ...change }), (err: unknown) => {
        assert.ok(err instanceof HttpQueueError);
        assert.equal(err.code, Code.INVALID_ARGUMENT, `${JSON.stringify(change).slice(0, 80)}: ${err.message}`);
        assert.match(err.details, message);
        return true;
      });
    }
    const [row] = await server.db.sql<
      { n: number }[]
    >`select count(*)::int as n from event_records where event = 'bad'`;
    assert.equal(row?.n, 0);
  });
});
