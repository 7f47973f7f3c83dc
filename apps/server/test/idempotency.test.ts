import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Code } from "@httpqueue/sdk";
import { startReceiver, until, type Receiver } from "@httpqueue/testkit";
import { rejection } from "./helpers/rejection.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

// Idempotency keys are remembered for IDEMPOTENCY_WINDOW: within it a repeat
// of the same event is a duplicate and another event under the key is
// refused; after it, the key stores a new event. PushEvent and
// httpqueue.push_event share the rule (httpqueue_store_events).

const WINDOW_MS = 1000;

describe("idempotency window", () => {
  let server: TestServer;
  let receiver: Receiver;
  before(async () => {
    server = await startTestServer({ IDEMPOTENCY_WINDOW: `${WINDOW_MS / 1000}s` });
    receiver = await startReceiver();
    await server.client.registerWebhook({ namespace: "idem", event: "order", url: receiver.url });
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  const push = (idempotencyKey: string, payload: string, event = "order") =>
    server.client.pushEvent({ namespace: "idem", event, payload, idempotencyKey });
  const eventsWithKey = async (key: string) => [
    ...(await server.db.sql<{ id: string; payload: string }[]>`
      select id, payload from event_records where namespace = 'idem' and idempotency_key = ${key}`),
  ];
  const count = async (event: string) => {
    const [row] = await server.db.sql<{ n: number }[]>`
      select count(*)::int as n from event_records where namespace = 'idem' and event = ${event}`;
    return row?.n ?? 0;
  };

  it("answers a repeat of the same event as a duplicate: the same name, and the same JSON however written", async () => {
    const first = await push("same-1", '{"id":1,"tags":["a"]}');
    assert.equal(first.duplicate, false);
    for (const payload of ['{"id":1,"tags":["a"]}', '{ "tags": ["a"], "id": 1.0 }']) {
      assert.deepEqual(await push("same-1", payload), { eventId: first.eventId, duplicate: true });
    }
    assert.equal((await eventsWithKey("same-1")).length, 1);
  });

  it("refuses another payload or event name under a key with ALREADY_EXISTS naming the key, and stores nothing", async () => {
    const first = await push("order-42", '{"id":42}');
    const before = await count("order");
    const otherPayload = await rejection(push("order-42", '{"id":42,"card":"4111-secret"}'));
    assert.equal(otherPayload.code, Code.ALREADY_EXISTS);
    assert.equal(
      otherPayload.details,
      `idempotency_key: "order-42" was used in namespace "idem" by event ${first.eventId} with a different payload; ` +
        "a repeat within the idempotency window must have the same event name and payload",
    );
    assert.doesNotMatch(otherPayload.details, /secret/, "the payload is not quoted");
    const otherName = await rejection(push("order-42", '{"id":42}', "order.updated"));
    assert.equal(otherName.code, Code.ALREADY_EXISTS);
    assert.match(otherName.details, /^idempotency_key: "order-42" was used .* with a different event name;/);
    assert.equal(await count("order"), before);
    assert.equal(await count("order.updated"), 0);
    // Keys are per namespace: another one may use it for anything.
    const elsewhere = await server.client.pushEvent({
      namespace: "idem2",
      event: "x",
      payload: "[]",
      idempotencyKey: "order-42",
    });
    assert.equal(elsewhere.duplicate, false);
  });

  // batching.test.ts shows it for pushes that certainly share a statement.
  it("answers each of concurrent pushes on its own: one mismatch fails no other", async () => {
    await push("batch-a", '{"a":1}');
    const results = await Promise.allSettled([
      push("batch-a", '{"a":1}'),
      push("batch-a", '{"a":2}'),
      push("batch-b", '{"b":1}'),
      push("batch-c", '{"c":1}'),
      push("batch-b", '{"b":1}'),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled", "fulfilled", "fulfilled"],
    );
    const [, mismatch] = results;
    assert.ok(mismatch.status === "rejected");
    assert.equal((mismatch.reason as { code?: number }).code, Code.ALREADY_EXISTS);
    const [repeat, , b1, c, b2] = results.map((r) => (r.status === "fulfilled" ? r.value : undefined));
    assert.equal(repeat?.duplicate, true);
    assert.equal(c?.duplicate, false);
    assert.deepEqual([b1?.duplicate, b2?.duplicate].sort(), [false, true], "one batch-b stored, the other repeated it");
    assert.equal(b1?.eventId, b2?.eventId);
  });

  it("frees a key after the window: the push stores a new event, and the old one gives the key up", async () => {
    const first = await push("later-1", '{"v":1}');
    await sleep(WINDOW_MS + 200);
    // Another payload is no mismatch once the key is free.
    const second = await push("later-1", '{"v":2}');
    assert.equal(second.duplicate, false);
    assert.notEqual(second.eventId, first.eventId);
    assert.deepEqual(await eventsWithKey("later-1"), [{ id: second.eventId, payload: '{"v":2}' }]);
    const { event } = await server.client.getEvent({ eventId: first.eventId });
    assert.equal(event?.idempotencyKey, "", "the old event gave its key up");
    assert.deepEqual(await push("later-1", '{"v":2}'), { eventId: second.eventId, duplicate: true });
    await until(
      () => ['{"v":1}', '{"v":2}'].every((body) => receiver.requests.some((r) => r.body === body)),
      15_000,
      "both events delivered",
    );
  });

  it("lets exactly one of many concurrent pushes of an expired key store the new event", async () => {
    await push("race-1", '{"r":0}');
    await sleep(WINDOW_MS + 200);
    const results = await Promise.all(Array.from({ length: 12 }, () => push("race-1", '{"r":1}')));
    const stored = results.filter((r) => !r.duplicate);
    assert.equal(stored.length, 1, "one push stored the new event");
    assert.ok(results.every((r) => r.eventId === stored[0]?.eventId));
    assert.deepEqual(
      (await eventsWithKey("race-1")).map((r) => r.id),
      [stored[0]?.eventId],
    );
  });

  it("answers ABORTED (retry) when the event holding the key went between the push's insert and its read", async () => {
    const { sql } = server.db;
    // The key's event goes right after an insert that found the key held (as when retention or a push that
    // freed the key after the window commits in between), in the push's own transaction.
    await sql.unsafe(`
      create function vanish() returns trigger language plpgsql as $$
      begin
        update public.event_records set idempotency_key = null
        where idempotency_key = 'vanishing' and id not in (select id from inserted);
        return null;
      end $$;
      create trigger vanish after insert on event_records referencing new table as inserted
        for each statement execute function vanish();`);
    try {
      await push("vanishing", '{"v":1}');
      const err = await rejection(push("vanishing", '{"v":1}'));
      assert.equal(err.code, Code.ABORTED, err.details);
    } finally {
      await sql.unsafe("drop trigger vanish on event_records; drop function vanish()");
    }
  });

  describe("httpqueue.push_event", () => {
    it("raises 23505 naming the key for another payload, returns the first id for the same, and stores anew after the window", async () => {
      const { sql } = server.db;
      const pushSql = async (payload: unknown) => {
        const [row] = await sql<{ id: string }[]>`
          select httpqueue.push_event('idem', 'order', ${sql.json(payload as never)}, 0, '{}', 'sql-1') as id`;
        return row?.id;
      };
      const first = await pushSql({ s: 1 });
      assert.equal(await pushSql({ s: 1 }), first);
      await assert.rejects(pushSql({ s: 2 }), (err: unknown) => {
        const e = err as { code?: string; message?: string };
        assert.equal(e.code, "23505");
        assert.equal(
          e.message,
          `idempotency_key: "sql-1" was used in namespace "idem" by event ${first} with a different payload; ` +
            "a repeat within the idempotency window must have the same event name and payload",
        );
        return true;
      });
      // The RPC and SQL share keys: the same JSON is a duplicate either way.
      assert.deepEqual(await push("sql-1", '{"s": 1}'), { eventId: first, duplicate: true });
      await sleep(WINDOW_MS + 200);
      const renewed = await pushSql({ s: 2 });
      assert.notEqual(renewed, first);
      assert.deepEqual(
        (await eventsWithKey("sql-1")).map((r) => r.id),
        [renewed],
      );
    });
  });
});
