import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, DeliveryStatus, type WatchDeliveriesResponse } from "@httpqueue/sdk";
import { eventually, startReceiver, type Receiver, type Responder } from "@httpqueue/testkit";
import postgres from "postgres";
import { rejection } from "./helpers/rejection.js";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

// The operator's toolbox against a real server and real receivers: every
// attempt as sent and answered, events, resending, recovering, replaying,
// and the live stream of deliveries' changes.

const { SUCCEEDED, FAILED, EXPIRED, PENDING, CANCELLED } = {
  SUCCEEDED: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  FAILED: DeliveryStatus.DELIVERY_STATUS_FAILED,
  EXPIRED: DeliveryStatus.DELIVERY_STATUS_EXPIRED,
  PENDING: DeliveryStatus.DELIVERY_STATUS_PENDING,
  CANCELLED: DeliveryStatus.DELIVERY_STATUS_CANCELLED,
};

describe("delivery history and control", () => {
  let server: TestServer;
  const receivers: Receiver[] = [];

  before(async () => {
    server = await startTestServer({ MAX_ATTEMPTS: "2" });
  });
  after(async () => {
    await server.stop();
    await Promise.all(receivers.map((r) => r.close()));
  });

  async function setUp(
    name: string,
    respond: Responder,
    retryPolicy?: { scheduleSeconds: number[]; maxAttempts: number },
  ) {
    const receiver = await startReceiver(respond);
    receivers.push(receiver);
    const { webhookId } = await server.client.registerWebhook({
      namespace: "history",
      event: name,
      url: `${receiver.url}/hook?n=1`,
      headers: { "X-Team": "ops" },
      retryPolicy,
    });
    const push = async (payload: unknown = {}, ttlSeconds = 0) =>
      (await server.client.pushEvent({ namespace: "history", event: name, payload, ttlSeconds })).eventId;
    return { receiver, webhookId, push };
  }

  it("lists a delivery's attempts as the receiver saw them, newest first", async () => {
    const { receiver, push } = await setUp("attempts", (_r, i) =>
      i === 0
        ? { status: 503, body: "busy now", headers: { "X-Reason": "maintenance" } }
        : { status: 200, body: "thanks", headers: { "X-Reason": "done" } },
    );
    const eventId = await push({ n: 1 });
    const delivery = await waitForDelivery(server.client, eventId, SUCCEEDED);
    const { attempts, nextPageToken } = await server.client.listAttempts({ deliveryId: delivery.id });
    assert.equal(nextPageToken, "");
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [2, 1],
    );
    for (const attempt of attempts) {
      const seen = receiver.requests[attempt.attempt - 1];
      assert.ok(seen);
      assert.equal(attempt.deliveryId, delivery.id);
      assert.equal(attempt.requestMethod, "POST");
      assert.equal(attempt.requestUrl, `${receiver.url}/hook?n=1`);
      assert.equal(seen.path, "/hook?n=1");
      // Every header the receiver got that the client set, with the same value (signature included).
      for (const name of [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-team",
        "content-type",
        "user-agent",
      ]) {
        assert.equal(attempt.requestHeaders[name], seen.headers[name], name);
      }
      assert.ok(!JSON.stringify(attempt).includes("whsec_"), "no secret");
      assert.ok(attempt.durationMs >= 0);
      assert.ok(attempt.startedAt instanceof Date);
    }
    const [second, first] = attempts;
    assert.equal(first?.responseCode, 503);
    assert.equal(first.responseBody, "busy now");
    assert.equal(first.responseHeaders["x-reason"], "maintenance");
    assert.match(first.errorMessage, /503/);
    assert.equal(second?.responseCode, 200);
    assert.equal(second.responseBody, "thanks");
    assert.equal(second.responseHeaders["x-reason"], "done");
    assert.equal(second.errorMessage, "");

    // One per page: the token walks them.
    const page1 = await server.client.listAttempts({ deliveryId: delivery.id, pageSize: 1 });
    const page2 = await server.client.listAttempts({
      deliveryId: delivery.id,
      pageSize: 1,
      pageToken: page1.nextPageToken,
    });
    assert.deepEqual([page1.attempts[0]?.attempt, page2.attempts[0]?.attempt, page2.nextPageToken], [2, 1, ""]);

    const unknown = await rejection(server.client.listAttempts({ deliveryId: "0192f5a0-0000-7000-8000-000000000000" }));
    assert.equal(unknown.code, Code.NOT_FOUND);
    const bad = await rejection(server.client.listAttempts({ deliveryId: "nope" }));
    assert.equal(bad.code, Code.INVALID_ARGUMENT);
    assert.match(bad.details, /^delivery_id: /);
  });

  it("gets an event with its payload and counts; lists events newest first, by namespace, event and time", async () => {
    const { push } = await setUp("events", () => 200);
    const before = new Date();
    const ids = [await push({ i: 0 }), await push({ i: 1 }), await push({ i: 2 })];
    await waitForDelivery(server.client, ids[2] ?? "", SUCCEEDED);
    const { event, counts } = await server.client.getEvent({ eventId: ids[0] });
    assert.equal(event?.payload, '{"i":0}');
    assert.deepEqual(
      counts.filter((c) => c.count > 0).map((c) => c.status),
      [SUCCEEDED],
      "the event's one delivery, succeeded",
    );

    const listed = await server.client.listEvents({ namespace: "history", event: "events" });
    assert.deepEqual(
      listed.events.map((e) => e.id),
      [...ids].reverse(),
    );
    assert.ok(
      listed.events.every((e) => e.payload === ""),
      "no payloads in lists",
    );
    const paged = [];
    for await (const e of server.client.listEventsAsync({ namespace: "history", event: "events", pageSize: 2 })) {
      paged.push(e.id);
    }
    assert.deepEqual(paged, [...ids].reverse());
    const after = await server.client.listEvents({ namespace: "history", createdAfter: new Date(Date.now() + 0) });
    assert.deepEqual(after.events, [], "nothing after now");
    const since = await server.client.listEvents({ namespace: "history", event: "events", createdAfter: before });
    assert.equal(since.events.length, 3);
    const older = await server.client.listEvents({ namespace: "history", event: "events", createdBefore: before });
    assert.equal(older.events.length, 0);

    // The extremes a Timestamp can carry (years -271821 and 275760): no bound, not an error.
    const everything = await server.client.listEvents({
      namespace: "history",
      event: "events",
      createdAfter: new Date(-8.64e15),
      createdBefore: new Date(8.64e15),
    });
    assert.equal(everything.events.length, 3);
    const future = await rejection(server.client.listEvents({ createdAfter: new Date(Date.now() + 3_600_000) }));
    assert.equal(future.code, Code.INVALID_ARGUMENT);
    assert.match(future.details, /^created_after: is in the future/);
    const noNamespace = await rejection(server.client.listEvents({ event: "events" }));
    assert.match(noNamespace.details, /^event: needs a namespace/);
    const missing = await rejection(server.client.getEvent({ eventId: "0192f5a0-0000-7000-8000-000000000000" }));
    assert.equal(missing.code, Code.NOT_FOUND);
  });

  it("resends a failed delivery once the receiver is fixed, and an expired one despite its TTL", async () => {
    let fixed = false;
    const { receiver, push } = await setUp("resend", () => (fixed ? 200 : 500));
    const eventId = await push({ resend: true });
    const failed = await waitForDelivery(server.client, eventId, FAILED);
    assert.equal(failed.attemptCount, 2);
    fixed = true;
    const { delivery } = await server.client.resendDelivery({ deliveryId: failed.id });
    assert.equal(delivery?.status, PENDING);
    assert.equal(delivery.maxAttempts, 4, "a full set of attempts after the two made");
    const resent = await waitForDelivery(server.client, eventId, SUCCEEDED);
    assert.equal(resent.attemptCount, 3);
    assert.equal(receiver.requests.length, 3);
    const { attempts } = await server.client.listAttempts({ deliveryId: failed.id });
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.responseCode]),
      [
        [3, 200],
        [2, 500],
        [1, 500],
      ],
    );

    // An event whose TTL passed before its retry: the delivery expired; a resend still goes.
    let up = false;
    const slow = await setUp("resend-expired", () => (up ? 200 : 500), { scheduleSeconds: [2], maxAttempts: 5 });
    const shortLived = await slow.push({ ttl: true }, 1);
    const expired = await waitForDelivery(server.client, shortLived, EXPIRED);
    assert.equal(expired.attemptCount, 1);
    up = true;
    await server.client.resendDelivery({ deliveryId: expired.id });
    assert.equal((await waitForDelivery(server.client, shortLived, SUCCEEDED)).attemptCount, 2);

    const unknown = await rejection(
      server.client.resendDelivery({ deliveryId: "0192f5a0-0000-7000-8000-000000000000" }),
    );
    assert.equal(unknown.code, Code.NOT_FOUND);
  });

  it("recovers exactly the failures since a time, once; refuses an inactive webhook", async () => {
    let fixed = false;
    const { receiver, webhookId, push } = await setUp("recover", () => (fixed ? 200 : 500));
    const old = await push({ old: true });
    await waitForDelivery(server.client, old, FAILED);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const since = new Date();
    const recent = [await push({ recent: 1 }), await push({ recent: 2 })];
    for (const id of recent) await waitForDelivery(server.client, id, FAILED);
    fixed = true;
    const before = receiver.requests.length;
    const [first, second] = await Promise.all([
      server.client.recoverWebhook({ webhookId, since }),
      server.client.recoverWebhook({ webhookId, since }),
    ]);
    assert.equal(first.resent + second.resent, 2, "two failures since then, resent once in all");
    for (const id of recent) await waitForDelivery(server.client, id, SUCCEEDED);
    assert.equal((await waitForDelivery(server.client, old, "final")).status, FAILED, "the older failure stays");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(receiver.requests.length - before, 2, "one request per recovered delivery");
    assert.equal((await server.client.recoverWebhook({ webhookId, since })).resent, 0, "nothing left to recover");

    const future = await rejection(server.client.recoverWebhook({ webhookId, since: new Date(Date.now() + 60_000) }));
    assert.equal(future.code, Code.INVALID_ARGUMENT);
    assert.match(future.details, /^since: is in the future/);
    const noSince = await rejection(server.client.recoverWebhook({ webhookId }));
    assert.match(noSince.details, /^since: is required/);
    await server.client.updateWebhook({ webhookId, active: false });
    const inactive = await rejection(server.client.recoverWebhook({ webhookId, since }));
    assert.equal(inactive.code, Code.FAILED_PRECONDITION);
    await server.client.unregisterWebhook({ webhookId });
    const gone = await rejection(server.client.recoverWebhook({ webhookId, since }));
    assert.equal(gone.code, Code.NOT_FOUND);
  });

  it("replays only the events a webhook missed (inactive, or registered later), once", async () => {
    const receiver = await startReceiver(() => 200);
    receivers.push(receiver);
    const push = async (i: number) =>
      (await server.client.pushEvent({ namespace: "history", event: "replay", payload: { i } })).eventId;
    const since = new Date();
    const beforeRegistration = await push(0);
    const { webhookId } = await server.client.registerWebhook({
      namespace: "history",
      event: "replay",
      url: receiver.url,
    });
    const delivered = await push(1);
    await waitForDelivery(server.client, delivered, SUCCEEDED);
    await server.client.updateWebhook({ webhookId, active: false });
    const whileInactive = await push(2);
    await server.client.updateWebhook({ webhookId, active: true });
    assert.equal(receiver.requests.length, 1);

    const [a, b] = await Promise.all([
      server.client.replayMissed({ webhookId, since }),
      server.client.replayMissed({ webhookId, since }),
    ]);
    assert.equal(a.queued + b.queued, 2, "the two missed events, once");
    await receiver.waitForRequests(3);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(receiver.requests.map((r) => (JSON.parse(r.body) as { i: number }).i).sort(), [0, 1, 2]);
    for (const id of [beforeRegistration, whileInactive]) {
      assert.equal((await waitForDelivery(server.client, id, SUCCEEDED)).webhookId, webhookId);
    }
    assert.equal((await server.client.replayMissed({ webhookId, since })).queued, 0);
  });

  it("streams each change of the deliveries it watches, with the attempt, filtered", async () => {
    let fixed = false;
    const { webhookId, push } = await setUp("watched", () => (fixed ? 200 : 500));
    const other = await setUp("unwatched", () => 200);
    const watch = server.client.watchDeliveries({ webhookId });
    await watch.ready;
    const seen: WatchDeliveriesResponse[] = [];
    const reading = (async () => {
      for await (const update of watch) seen.push(update);
    })();
    const eventId = await push({ watched: true });
    await other.push({ unwatched: true });
    await waitForDelivery(server.client, eventId, FAILED);
    fixed = true;
    const { delivery } = await server.client.resendDelivery({
      deliveryId: (await waitForDelivery(server.client, eventId, FAILED)).id,
    });
    await waitForDelivery(server.client, eventId, SUCCEEDED);
    await eventually(() => Promise.resolve(seen.some((u) => u.status === SUCCEEDED) ? true : undefined), 5_000);
    watch.close();
    await reading;
    assert.ok(seen.every((u) => u.webhookId === webhookId && u.deliveryId === delivery?.id));
    assert.deepEqual(
      seen.map((u) => [DeliveryStatus[u.status], u.attemptCount, u.attempt?.responseCode ?? null]),
      [
        ["DELIVERY_STATUS_PENDING", 0, null],
        ["DELIVERY_STATUS_RETRYING", 1, 500],
        ["DELIVERY_STATUS_FAILED", 2, 500],
        ["DELIVERY_STATUS_PENDING", 2, null],
        ["DELIVERY_STATUS_SUCCEEDED", 3, 200],
      ],
    );
    const last = seen.at(-1);
    assert.equal(last?.namespace, "history");
    assert.equal(last.event, "watched");
    assert.equal(last.eventId, eventId);
    assert.equal(last.attempt?.attempt, 3);
    assert.ok(last.attempt.requestHeaders["webhook-signature"]?.startsWith("v1,"));

    const unknown = server.client.watchDeliveries({ webhookId: "0192f5a0-0000-7000-8000-000000000000" });
    const err = await rejection(unknown.ready);
    assert.equal(err.code, Code.NOT_FOUND);
    assert.match(err.details, /^webhook_id: /);
  });

  it("streams changes committed by anyone on the database, and a cancellation's reason", async () => {
    const { webhookId, push } = await setUp("elsewhere", () => "hang");
    const watch = server.client.watchDeliveries({ namespace: "history" });
    await watch.ready;
    const seen: WatchDeliveriesResponse[] = [];
    const reading = (async () => {
      for await (const update of watch) if (update.webhookId === webhookId) seen.push(update);
    })();
    const eventId = await push();
    const delivery = await waitForDelivery(server.client, eventId, PENDING);
    // Another process, not this server: a plain SQL update.
    const sql = postgres(server.db.url, { max: 1, onnotice: () => undefined });
    await sql`update webhook_deliveries set status = 'cancelled', error_message = 'cancelled by hand', next_attempt_at = null where id = ${delivery.id}`;
    await sql.end();
    await eventually(() => Promise.resolve(seen.some((u) => u.status === CANCELLED) ? true : undefined), 5_000);
    watch.close();
    await reading;
    const cancelled = seen.find((u) => u.status === CANCELLED);
    assert.equal(cancelled?.errorMessage, "cancelled by hand");
    assert.equal(cancelled.attempt, undefined);
  });
});
