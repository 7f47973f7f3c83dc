import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@httpqueue/sdk";
import { startReceiver, type Receiver } from "@httpqueue/testkit";
import postgres from "postgres";
import { rejection } from "./helpers/rejection.js";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

// Event intake: webhooks on event patterns and with payload filters, matched
// in the push statement; and the push from SQL, inside the application's own
// transaction.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("event intake", () => {
  let server: TestServer;
  let sql: postgres.Sql;
  const receivers: Receiver[] = [];

  before(async () => {
    server = await startTestServer();
    sql = postgres(server.db.url, { max: 2, onnotice: () => undefined });
  });
  after(async () => {
    await sql.end();
    await server.stop();
    await Promise.all(receivers.map((r) => r.close()));
  });

  /** A webhook on its own receiver, which answers 200 and records the payloads it gets. */
  async function webhook(namespace: string, event: string, filter = "") {
    const receiver = await startReceiver(() => 200);
    receivers.push(receiver);
    const { webhookId, webhook: registered } = await server.client.registerWebhook({
      namespace,
      event,
      url: receiver.url,
      filter,
    });
    const payloads = () => receiver.requests.map((r) => JSON.parse(r.body) as Record<string, unknown>);
    return { webhookId, registered, receiver, payloads };
  }

  /** Deliveries (and their jobs) made for a webhook: none for what it does not receive. */
  async function deliveriesOf(webhookId: string): Promise<number> {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from webhook_deliveries where webhook_id = ${webhookId}`;
    return row?.n ?? 0;
  }

  it("delivers to '*' every event of its namespace and to 'order.*' the events under order.", async () => {
    const all = await webhook("shop", "*");
    const orders = await webhook("shop", "order.*");
    const exact = await webhook("shop", "order.created");
    const push = (namespace: string, event: string) =>
      server.client.pushEvent({ namespace, event, payload: { event } }).then((r) => r.eventId);
    const pushed = [
      await push("shop", "order.created"),
      await push("shop", "order.item.added"),
      await push("shop", "order"),
      await push("shop", "orders.x"),
      await push("other", "order.created"),
    ];
    for (const id of pushed.slice(0, 4)) await waitForDelivery(server.client, id, "final");
    await sleep(300);
    const events = (r: { payloads(): Record<string, unknown>[] }) =>
      r
        .payloads()
        .map((p) => p.event)
        .sort();
    assert.deepEqual(events(all), ["order", "order.created", "order.item.added", "orders.x"]);
    assert.deepEqual(events(orders), ["order.created", "order.item.added"]);
    assert.deepEqual(events(exact), ["order.created"]);
    assert.equal(await deliveriesOf(orders.webhookId), 2, "no delivery for what it does not receive");
    assert.equal(orders.registered?.event, "order.*");
  });

  it("delivers only the payloads a filter matches (subset; an array is any of)", async () => {
    const filtered = await webhook(
      "billing",
      "plan.changed",
      '{"plan": "pro", "country": ["DE", "FR"], "meta": {"v": 2}}',
    );
    assert.deepEqual(JSON.parse(filtered.registered?.filter ?? ""), {
      plan: "pro",
      country: ["DE", "FR"],
      meta: { v: 2 },
    });
    const payloads = [
      { n: 1, plan: "pro", country: "DE", meta: { v: 2, extra: true } },
      { n: 2, plan: "pro", country: "FR", meta: { v: 2 } },
      { n: 3, plan: "free", country: "DE", meta: { v: 2 } },
      { n: 4, plan: "pro", country: "US", meta: { v: 2 } },
      { n: 5, plan: "pro", country: "DE", meta: { v: 3 } },
      { n: 6, plan: "pro", country: "DE" },
      [1, 2, 3],
      JSON.stringify("just text"),
    ];
    for (const payload of payloads)
      await server.client.pushEvent({ namespace: "billing", event: "plan.changed", payload });
    await filtered.receiver.waitForRequests(2);
    await sleep(500);
    assert.deepEqual(
      filtered
        .payloads()
        .map((p) => p.n)
        .sort(),
      [1, 2],
    );
    assert.equal(await deliveriesOf(filtered.webhookId), 2, "no delivery, and so no job, for the others");

    // Removed: every payload again.
    const { webhook: cleared } = await server.client.updateWebhook({ webhookId: filtered.webhookId, filter: "" });
    assert.equal(cleared?.filter, "");
    const [row] = await sql<{ is_null: boolean }[]>`
      select filter is null as is_null from webhook_registrations where id = ${filtered.webhookId}`;
    assert.equal(row?.is_null, true, "stored as SQL NULL");
    await server.client.pushEvent({ namespace: "billing", event: "plan.changed", payload: { n: 9 } });
    await filtered.receiver.waitForRequests(3);
  });

  it("replays to a pattern or filtered webhook only what it would have received", async () => {
    const since = new Date();
    for (const [event, plan] of [
      ["sub.created", "pro"],
      ["sub.created", "free"],
      ["sub.deleted", "pro"],
      ["other", "pro"],
    ] as const) {
      await server.client.pushEvent({ namespace: "replay", event, payload: { event, plan } });
    }
    const late = await webhook("replay", "sub.*", '{"plan": "pro"}');
    const { queued } = await server.client.replayMissed({ webhookId: late.webhookId, since });
    assert.equal(queued, 2);
    await late.receiver.waitForRequests(2);
    assert.deepEqual(
      late
        .payloads()
        .map((p) => p.event)
        .sort(),
      ["sub.created", "sub.deleted"],
    );
  });

  it("refuses bad patterns and filters, naming the field", async () => {
    const register = (event: string, filter = "") =>
      server.client.registerWebhook({ namespace: "bad", event, url: "https://example.com/h", filter });
    for (const event of ["a*b", "*.x", "order*", ".*", "**"]) {
      const err = await rejection(register(event));
      assert.equal(err.code, Code.INVALID_ARGUMENT, event);
      assert.match(err.details, /^event: /, event);
    }
    for (const [filter, field] of [
      ["[1]", "filter"],
      ["null", "filter"],
      ['"pro"', "filter"],
      ["{not json", "filter"],
      ['{"country": []}', "filter.country"],
      [JSON.stringify({ large: "x".repeat(5000) }), "filter"],
    ] as const) {
      const err = await rejection(register("e", filter));
      assert.equal(err.code, Code.INVALID_ARGUMENT, filter.slice(0, 40));
      assert.ok(err.details.startsWith(`${field}: `), err.details);
    }
    // Patterns are for webhooks: an event is pushed under its own name.
    const push = await rejection(server.client.pushEvent({ namespace: "bad", event: "order.*", payload: {} }));
    assert.match(push.details, /^event: /);
  });

  it("keeps a filter's numbers as written, and refuses JSON that jsonb cannot hold", async () => {
    // Stored and matched as written (the filter as shown is read back through a JavaScript number).
    const big = await webhook("exact", "e", '{"account": 12345678901234567891}');
    await server.client.pushEvent({ namespace: "exact", event: "e", payload: '{"account": 12345678901234567891}' });
    await server.client.pushEvent({ namespace: "exact", event: "e", payload: '{"account": 12345678901234567000}' });
    await big.receiver.waitForRequests(1);
    await sleep(300);
    assert.equal(big.receiver.requests.length, 1, "only the exact number matches");
    // JavaScript reads 1e-16384 and 0e2000000000 as 0; jsonb's numeric keeps 16383 digits after the point.
    for (const payload of [
      '{"a": "\\u0000"}',
      '{"a": "\\ud800"}',
      '{"a": 1e400}',
      '{"a": 1e-16384}',
      "[0.0e-16383]",
      '{"a": 0e2000000000}',
    ]) {
      const err = await rejection(server.client.pushEvent({ namespace: "exact", event: "e", payload }));
      assert.equal(err.code, Code.INVALID_ARGUMENT, payload);
      assert.match(err.details, /^payload: /);
    }
    // At the limit, and such text in a string, are JSON that jsonb holds: compared as jsonb (an idempotency key).
    const fine = '{"a": 1e-16383, "b": "1e-99999 \\u0041"}';
    const stored = await server.client.pushEvent({
      namespace: "exact",
      event: "e",
      payload: fine,
      idempotencyKey: "k",
    });
    const repeat = await server.client.pushEvent({
      namespace: "exact",
      event: "e",
      payload: ` ${fine}`,
      idempotencyKey: "k",
    });
    assert.deepEqual(repeat, { eventId: stored.eventId, duplicate: true });
    const fineFilter = await rejection(
      server.client.registerWebhook({
        namespace: "exact",
        event: "e",
        url: big.receiver.url,
        filter: '{"a": 1e-16384}',
      }),
    );
    assert.match(fineFilter.details, /^filter: has a number PostgreSQL cannot store/);
    const filterErr = await rejection(
      server.client.registerWebhook({
        namespace: "exact",
        event: "e",
        url: big.receiver.url,
        filter: '{"a": "\\u0000"}',
      }),
    );
    assert.match(filterErr.details, /^filter: /);
  });

  describe("httpqueue.push_event, in the application's transaction", () => {
    it("delivers what commits, nothing of what rolls back (a savepoint included)", async () => {
      const hook = await webhook("tx", "user.created");
      const pushIn = (tx: postgres.TransactionSql, n: number) =>
        tx<{ id: string }[]>`select httpqueue.push_event('tx', 'user.created', ${sql.json({ n })}) as id`;
      await sql
        .begin(async (tx) => {
          await pushIn(tx, 0);
          throw new Error("rolled back");
        })
        .catch(() => undefined);
      // Nothing of it stays: no event, no delivery, no job for the (new) webhook.
      const [left] = await sql<{ events: number; jobs: number }[]>`
        select (select count(*)::int from event_records where namespace = 'tx') as events,
          (select count(*)::int from graphile_worker._private_jobs where payload->>'webhookId' = ${hook.webhookId}) as jobs`;
      assert.deepEqual(left, { events: 0, jobs: 0 });
      assert.equal(await deliveriesOf(hook.webhookId), 0);
      const [committed] = await sql.begin(async (tx) => {
        const [first] = await pushIn(tx, 1);
        await tx
          .savepoint(async (sp) => {
            await pushIn(sp, 2);
            throw new Error("savepoint rolled back");
          })
          .catch(() => undefined);
        await pushIn(tx, 3);
        return [first];
      });
      assert.match(committed?.id ?? "", /^[0-9a-f-]{36}$/);
      await hook.receiver.waitForRequests(2);
      await sleep(300);
      assert.deepEqual(
        hook
          .payloads()
          .map((p) => p.n)
          .sort(),
        [1, 3],
      );
      const { event, counts } = await server.client.getEvent({ eventId: committed?.id ?? "" });
      assert.equal(event?.namespace, "tx");
      assert.equal(
        counts.reduce((sum, c) => sum + c.count, 0),
        1,
      );
    });

    it("refuses bad input with SQLSTATE 22023 naming the argument; a repeated key returns the first id", async () => {
      const attempt = async (query: Promise<unknown>) => {
        const err = (await query.then(
          () => undefined,
          (e: unknown) => e,
        )) as { code?: string; message?: string } | undefined;
        assert.ok(err, "refused");
        return err;
      };
      for (const [query, field] of [
        [sql`select httpqueue.push_event('bad name', 'e', '{}')`, "namespace"],
        [sql`select httpqueue.push_event('httpqueue', 'e', '{}')`, "namespace"],
        [sql`select httpqueue.push_event('n', 'order.*', '{}')`, "event"],
        [sql`select httpqueue.push_event('n', 'e', null)`, "payload"],
        [sql`select httpqueue.push_event('n', 'e', '{}', -1)`, "ttl_seconds"],
        [sql`select httpqueue.push_event('n', 'e', '{}', 0, '[]')`, "metadata"],
        [sql`select httpqueue.push_event('n', 'e', '{}', 0, '{"k": 1}')`, "metadata"],
        [sql`select httpqueue.push_event('n', 'e', '{}', 0, '{}', 'has space')`, "idempotency_key"],
        [sql`select httpqueue.push_event('n', 'e', '{}', 0, '{}', null, 'has space')`, "ordering_key"],
        [sql`select httpqueue.push_event('n', 'e', ${sql.json({ large: "x".repeat(300_000) })})`, "payload"],
      ] as const) {
        const err = await attempt(query);
        assert.equal(err.code, "22023", err.message);
        assert.ok(err.message?.startsWith(field), err.message);
      }
      // A caller that may create functions in public cannot slip one in: push_event resolves only in pg_catalog.
      const role = `hq_app_${process.pid}`;
      await sql.unsafe(`create role ${role}`);
      try {
        await sql.unsafe(`grant create, usage on schema public to ${role}`);
        await sql.unsafe(`grant usage on schema httpqueue to ${role}`);
        await sql.unsafe(
          `grant execute on function httpqueue.push_event(text, text, jsonb, integer, jsonb, text, text) to ${role}`,
        );
        const hijacked = await sql
          .begin(async (tx) => {
            await tx.unsafe(`set local role ${role}`);
            await tx.unsafe(`create function public.format(text, integer, integer) returns text language plpgsql as
              $$ begin raise exception 'hijacked'; end $$`);
            await tx`select httpqueue.push_event('n', 'e', ${sql.json({ large: "x".repeat(300_000) })})`;
          })
          .then(
            () => undefined,
            (e: unknown) => e as { code?: string; message?: string },
          );
        assert.equal(hijacked?.code, "22023", hijacked?.message);
        assert.match(hijacked.message ?? "", /^payload: is \d+ bytes/);
      } finally {
        await sql.unsafe(`drop owned by ${role}`);
        await sql.unsafe(`drop role ${role}`);
      }

      const key = `k-${Date.now()}`;
      const [a] = await sql<{ id: string }[]>`select httpqueue.push_event('n', 'e', '{"x": 1}', 0, '{}', ${key}) as id`;
      const [b] = await sql<
        { id: string }[]
      >`select httpqueue.push_event('n', 'e', '{ "x" : 1 }', 0, '{}', ${key}) as id`;
      assert.equal(b?.id, a?.id);
      // Another payload under the key: refused (see idempotency.test.ts).
      await assert.rejects(sql`select httpqueue.push_event('n', 'e', '{"other": 1}', 0, '{}', ${key})`, {
        code: "23505",
      });
    });
  });
});
