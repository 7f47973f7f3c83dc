import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Code,
  DeliveryStatus,
  DisabledReason,
  HttpQueueError,
  Ordering,
  type DeepPartial,
  type RegisterWebhookRequest,
} from "@httpqueue/sdk";
import { eventually, startReceiver, type Receiver, type Responder } from "@httpqueue/testkit";
import { scrape } from "./helpers/http.js";
import { databaseAndReceivers, startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

// Endpoint-aware delivery against real receivers on loopback: a webhook's
// own retry policy, rate limit and ordering, and what its receiver's answers
// do to the whole webhook (410, Retry-After, overload), up to deactivation
// and the events that tell operators.

/** Milliseconds between consecutive requests. */
const gaps = (times: number[]) => times.slice(1).map((t, i) => t - (times[i] ?? t));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

describe("endpoint-aware delivery", () => {
  let server: TestServer;
  const receivers: Receiver[] = [];

  before(async () => {
    server = await startTestServer({ RETRY_JITTER: "0.1", RETRY_AFTER_MAX: "10s" });
  });
  after(async () => {
    await server.stop();
    await Promise.all(receivers.map((r) => r.close()));
  });

  async function setUp(name: string, respond: Responder, webhook: DeepPartial<RegisterWebhookRequest> = {}) {
    const receiver = await startReceiver(respond);
    receivers.push(receiver);
    const { webhookId } = await server.client.registerWebhook({
      namespace: "endpoints",
      event: name,
      url: receiver.url,
      ...webhook,
    });
    const push = async (payload: unknown = {}, orderingKey = "") =>
      (await server.client.pushEvent({ namespace: "endpoints", event: name, payload, orderingKey })).eventId;
    return { receiver, webhookId, push };
  }

  const webhookOf = async (webhookId: string) => {
    const { webhook } = await server.client.getWebhookStatus({ webhookId, pageSize: 1 });
    assert.ok(webhook);
    return webhook;
  };

  it("follows the webhook's own retry schedule and number of attempts", async () => {
    const { receiver, webhookId, push } = await setUp("schedule", () => 500, {
      retryPolicy: { scheduleSeconds: [1, 2], maxAttempts: 4 },
    });
    assert.deepEqual((await webhookOf(webhookId)).retryPolicy, { scheduleSeconds: [1, 2], maxAttempts: 4 });
    const delivery = await waitForDelivery(server.client, await push(), "final", 20_000);
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_FAILED);
    assert.equal(delivery.attemptCount, 4);
    assert.equal(delivery.maxAttempts, 4, "the webhook's attempts, not the server's");
    const waits = gaps(receiver.requests.map((r) => r.receivedAt));
    // 1 s, 2 s, then the last delay repeats; each within the jitter (10 %) and a poll's lateness.
    for (const [i, expected] of [1000, 2000, 2000].entries()) {
      const wait = waits[i] ?? NaN;
      assert.ok(
        wait >= expected * 0.9 - 20 && wait <= expected * 1.1 + 300,
        `wait ${i + 1}: ${wait} ms, not ~${expected}`,
      );
    }
  });

  it("applies a new number of attempts to deliveries not yet ended", async () => {
    const { receiver, webhookId, push } = await setUp("shrink", () => 500, {
      retryPolicy: { scheduleSeconds: [2], maxAttempts: 10 },
    });
    const eventId = await push();
    await receiver.waitForRequests(1);
    await server.client.updateWebhook({ webhookId, retryPolicy: { scheduleSeconds: [1], maxAttempts: 2 } });
    const delivery = await waitForDelivery(server.client, eventId, "final");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_FAILED);
    assert.equal(delivery.maxAttempts, 2);
    assert.equal(receiver.requests.length, 2);
    // Fewer attempts than a delivery has made: it ends now, without another.
    const spent = await setUp("spent", () => 500, { retryPolicy: { scheduleSeconds: [3600], maxAttempts: 5 } });
    const spentEvent = await spent.push();
    await waitForDelivery(server.client, spentEvent, DeliveryStatus.DELIVERY_STATUS_RETRYING);
    await server.client.updateWebhook({ webhookId: spent.webhookId, retryPolicy: { maxAttempts: 1 } });
    const ended = await waitForDelivery(server.client, spentEvent, "final", 5_000);
    assert.equal(ended.status, DeliveryStatus.DELIVERY_STATUS_FAILED);
    assert.equal(ended.attemptCount, 1);
    assert.match(ended.errorMessage, /all the retry policy allows/);
    assert.equal(spent.receiver.requests.length, 1);
    // An empty policy goes back to the server's defaults.
    const { webhook } = await server.client.updateWebhook({ webhookId, retryPolicy: {} });
    assert.ok(webhook);
    assert.equal(webhook.retryPolicy, undefined);
  });

  it("deactivates a webhook whose receiver answers 410 Gone and cancels its pending deliveries", async () => {
    // Answered late enough for every push to find the webhook still active.
    const { receiver, webhookId, push } = await setUp(
      "gone",
      () => ({ status: 410, body: "gone for good", delayMs: 500 }),
      { maxInFlight: 1 },
    );
    const before = await scrape(server.app.httpAddress);
    const events = [];
    for (let i = 0; i < 5; i++) events.push(await push({ i }));
    const webhook = await eventually(async () => {
      const w = await webhookOf(webhookId);
      return w.active ? undefined : w;
    });
    assert.equal(webhook.disabledReason, DisabledReason.DISABLED_REASON_GONE);
    assert.ok(webhook.disabledAt);
    const outcomes = await Promise.all(events.map((id) => waitForDelivery(server.client, id, "final")));
    const failed = outcomes.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_FAILED);
    assert.equal(failed.length, 1, "the one that was answered 410 failed, without a retry");
    const [gone] = failed;
    assert.ok(gone);
    assert.equal(gone.attemptCount, 1);
    assert.equal(gone.responseCode, 410);
    assert.ok(
      outcomes.every((d) => d === gone || d.status === DeliveryStatus.DELIVERY_STATUS_CANCELLED),
      "the others were cancelled",
    );
    assert.equal(receiver.requests.length, 1, "nothing was sent after the 410");
    const metrics = await scrape(server.app.httpAddress);
    const disabled = (m: typeof metrics) => m.value("httpqueue_webhooks_disabled_total", { reason: "gone" }) ?? 0;
    assert.equal(disabled(metrics) - disabled(before), 1);
  });

  it("pauses the whole webhook for Retry-After while another webhook flows", async () => {
    let pausedAt = 0;
    const paused = await setUp(
      "paused",
      (_req, i) => {
        if (i > 0) return 200;
        pausedAt = Date.now();
        return { status: 429, headers: { "retry-after": "2" } };
      },
      { maxInFlight: 1 },
    );
    const other = await setUp("unpaused", () => 200);
    const before = await scrape(server.app.httpAddress);
    const first = await paused.push({ n: 0 });
    await paused.receiver.waitForRequests(1);
    const rest = [];
    for (let n = 1; n <= 4; n++) rest.push(await paused.push({ n }));
    // Meanwhile the other webhook is delivered to at once.
    const otherEvent = await other.push();
    const otherDelivery = await waitForDelivery(
      server.client,
      otherEvent,
      DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
      1_500,
    );
    assert.equal(otherDelivery.attemptCount, 1);
    assert.equal(paused.receiver.requests.length, 1, "nothing sent to the paused webhook yet");
    const pausedWebhook = await webhookOf(paused.webhookId);
    assert.ok(pausedWebhook.active);

    for (const id of [first, ...rest])
      await waitForDelivery(server.client, id, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const later = paused.receiver.requests.slice(1).map((r) => r.receivedAt - pausedAt);
    assert.equal(later.length, 5, "the 429'd delivery again, and the four that waited");
    assert.ok(
      later.every((ms) => ms >= 1_900 && ms < 4_000),
      `every request waited about 2 s: ${later.join(", ")} ms`,
    );
    const restDeliveries = await Promise.all(rest.map((id) => waitForDelivery(server.client, id, "final")));
    assert.ok(
      restDeliveries.every((d) => d.attemptCount === 1),
      "the deliveries held back used no attempt",
    );
    const metrics = await scrape(server.app.httpAddress);
    const postponed = (m: typeof metrics) => m.value("httpqueue_deliveries_postponed_total", { reason: "paused" }) ?? 0;
    assert.ok(postponed(metrics) - postponed(before) >= 1, "postponements are counted");
  });

  it("halves the pace on 503 without Retry-After and recovers it on successes", async () => {
    const overloaded = new Set([15, 16, 17]);
    const { receiver, push } = await setUp("overloaded", (_req, i) => (overloaded.has(i) ? 503 : 200), {
      rateLimitPerSecond: 40,
      maxInFlight: 4,
    });
    // Pushed at once, so that the rate limit, not how fast pushes are answered, sets the pace.
    await Promise.all(Array.from({ length: 90 }, (_, n) => push({ n })));
    await receiver.waitForRequests(93, 20_000);
    const times = receiver.requests.map((r) => r.receivedAt);
    const before = median(gaps(times.slice(2, 15)));
    const slowed = median(gaps(times.slice(19, 26)));
    const recovered = median(gaps(times.slice(-10)));
    assert.ok(before >= 20 && before <= 35, `at the rate limit before: ${before} ms apart`);
    assert.ok(slowed >= before * 1.6, `slowed after the 503s: ${slowed} ms apart (was ${before})`);
    assert.ok(recovered <= before * 1.3, `back at the rate limit: ${recovered} ms apart (was ${before})`);
  });

  it("delivers the events of one ordering key one after another, across retries, while other keys flow", async () => {
    let failedA1 = false;
    const { receiver, webhookId, push } = await setUp(
      "ordered",
      (req) => {
        const { key, n } = JSON.parse(req.body) as { key: string; n: number };
        if (key === "A" && n === 1 && !failedA1) {
          failedA1 = true;
          return 500;
        }
        return 200;
      },
      { ordering: Ordering.ORDERING_BY_KEY, retryPolicy: { scheduleSeconds: [1] } },
    );
    assert.equal((await webhookOf(webhookId)).ordering, Ordering.ORDERING_BY_KEY);
    const events = [];
    for (let n = 1; n <= 4; n++) {
      events.push(await push({ key: "A", n }, "A"));
      events.push(await push({ key: "B", n }, "B"));
    }
    for (const id of events) await waitForDelivery(server.client, id, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const seen = receiver.requests.map((r) => JSON.parse(r.body) as { key: string; n: number });
    const order = (key: string) => seen.filter((e) => e.key === key).map((e) => e.n);
    assert.deepEqual(order("A"), [1, 1, 2, 3, 4], "A in push order, its first one tried twice");
    assert.deepEqual(order("B"), [1, 2, 3, 4], "B in push order");
    const at = (key: string, n: number, nth = 0) =>
      seen.findIndex(
        (e, i) =>
          e.key === key && e.n === n && seen.slice(0, i).filter((p) => p.key === key && p.n === n).length === nth,
      );
    assert.ok(at("B", 4) < at("A", 1, 1), "B flowed while A's first event waited for its retry");
  });

  it("orders every delivery of an ordered webhook when events carry no key", async () => {
    let failed = false;
    const { receiver, push } = await setUp(
      "ordered-nokey",
      (req) => {
        if (!failed && (JSON.parse(req.body) as { n: number }).n === 0) {
          failed = true;
          return 503;
        }
        return 200;
      },
      { ordering: Ordering.ORDERING_BY_KEY, retryPolicy: { scheduleSeconds: [1] } },
    );
    const events = [];
    for (let n = 0; n < 5; n++) events.push(await push({ n }));
    for (const id of events) await waitForDelivery(server.client, id, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    assert.deepEqual(
      receiver.requests.map((r) => (JSON.parse(r.body) as { n: number }).n),
      [0, 0, 1, 2, 3, 4],
    );
  });

  it("refuses bad policies and the reserved namespace with INVALID_ARGUMENT naming the field", async () => {
    const { client } = server;
    const base = { namespace: "endpoints", event: "bad", url: "http://127.0.0.1:9/" };
    const cases: [DeepPartial<RegisterWebhookRequest>, string][] = [
      [{ retryPolicy: { maxAttempts: 51 } }, "retry_policy.max_attempts"],
      [{ retryPolicy: { maxAttempts: -1 } }, "retry_policy.max_attempts"],
      [{ retryPolicy: { scheduleSeconds: [5, 0] } }, "retry_policy.schedule_seconds[1]"],
      [{ retryPolicy: { scheduleSeconds: [86_401] } }, "retry_policy.schedule_seconds[0]"],
      [{ retryPolicy: { scheduleSeconds: Array.from({ length: 51 }, () => 1) } }, "retry_policy.schedule_seconds"],
      [{ rateLimitPerSecond: -1 }, "rate_limit_per_second"],
      [{ rateLimitPerSecond: 100_001 }, "rate_limit_per_second"],
      [{ maxInFlight: 1001 }, "max_in_flight"],
      [{ ordering: 7 as unknown as Ordering }, "ordering"],
    ];
    const refused = async (call: Promise<unknown>, field: string) => {
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof HttpQueueError);
        assert.equal(err.code, Code.INVALID_ARGUMENT);
        assert.ok(err.details.startsWith(`${field}:`), `${err.details} names ${field}`);
        return true;
      });
    };
    for (const [over, field] of cases) await refused(client.registerWebhook({ ...base, ...over }), field);
    const { webhookId } = await client.registerWebhook(base);
    for (const [over, field] of cases) await refused(client.updateWebhook({ webhookId, ...over }), field);
    await refused(client.pushEvent({ namespace: "httpqueue", event: "webhook.disabled", payload: {} }), "namespace");
    await refused(
      client.pushEvent({ namespace: "endpoints", event: "bad", payload: {}, orderingKey: "a b" }),
      "ordering_key",
    );
    await refused(
      client.pushEvent({ namespace: "endpoints", event: "bad", payload: {}, orderingKey: "k".repeat(256) }),
      "ordering_key",
    );
  });
});

describe("rate limit across servers", () => {
  const fixture = databaseAndReceivers();

  it("holds a webhook to its rate limit with two servers on one database", async () => {
    const a = await startTestServer({}, fixture.db);
    const b = await startTestServer({}, fixture.db).catch(async (err: unknown) => {
      await a.stop();
      throw err;
    });
    try {
      const receiver = await fixture.receiver(() => 200);
      const { webhookId } = await a.client.registerWebhook({
        namespace: "limited",
        event: "e",
        url: receiver.url,
        rateLimitPerSecond: 20,
      });
      // 300 queued, through both servers.
      await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          (i % 2 === 0 ? a : b).client.pushEvent({ namespace: "limited", event: "e", payload: { i } }),
        ),
      );
      await receiver.waitForRequests(1);
      const start = receiver.requests[0]?.receivedAt ?? 0;
      await new Promise((resolve) => setTimeout(resolve, 6_200));
      await a.client.updateWebhook({ webhookId, active: false });
      const times = receiver.requests.map((r) => r.receivedAt - start);
      const inWindow = times.filter((t) => t < 6_000).length;
      assert.ok(inWindow >= 108 && inWindow <= 132, `${inWindow} requests in 6 s at 20/s (120 ± 10 %)`);
      let busiest = 0;
      for (const t of times) busiest = Math.max(busiest, times.filter((u) => u >= t && u < t + 1000).length);
      assert.ok(
        busiest <= 22,
        `at most 20 (+ the one at the second's edge, and timer lateness) in any second: ${busiest}`,
      );
      // Attempts in flight at the deactivation are recorded as they end.
      await eventually(
        async () => {
          const [recorded] = await fixture.db.sql<{ n: number }[]>`
            select count(*)::int as n from delivery_attempts a join webhook_deliveries d on d.id = a.delivery_id
            where d.webhook_id = ${webhookId}`;
          return recorded?.n === receiver.requests.length ? true : undefined;
        },
        5_000,
        "every request recorded as an attempt",
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe("auto-disable and operator events", () => {
  let server: TestServer;
  const receivers: Receiver[] = [];

  before(async () => {
    server = await startTestServer({
      AUTO_DISABLE_AFTER: "3s",
      AUTO_DISABLE_MIN_FAILURES: "3",
      FAILING_NOTICE_AFTER: "1s",
    });
  });
  after(async () => {
    await server.stop();
    await Promise.all(receivers.map((r) => r.close()));
  });

  const receiver = async (respond: Responder) => {
    const r = await startReceiver(respond);
    receivers.push(r);
    return r;
  };

  it("tells operators a webhook is failing, recovered, or disabled, and re-activating starts it clean", async () => {
    const { client } = server;
    const operator = await receiver(() => 204);
    for (const event of ["webhook.disabled", "webhook.failing", "webhook.recovered"]) {
      await client.registerWebhook({ namespace: "httpqueue", event, url: operator.url });
    }
    const broken = await receiver(() => 500);
    const { webhookId: brokenId } = await client.registerWebhook({
      namespace: "health",
      event: "broken",
      url: broken.url,
      retryPolicy: { scheduleSeconds: [1] },
    });
    const started = Date.now();
    const flaky = await receiver(() => (Date.now() - started < 1_600 ? 502 : 200));
    const { webhookId: flakyId } = await client.registerWebhook({
      namespace: "health",
      event: "flaky",
      url: flaky.url,
      retryPolicy: { scheduleSeconds: [1] },
    });
    await client.pushEvent({ namespace: "health", event: "broken", payload: {} });
    await client.pushEvent({ namespace: "health", event: "flaky", payload: {} });

    type Notice = {
      type: string;
      webhookId: string;
      reason: string | null;
      lastError: string | null;
      failingSince: string | null;
    };
    const notices = () => operator.requests.map((r) => JSON.parse(r.body) as Notice);
    const noticeOf = (type: string, webhookId: string) =>
      eventually(
        () => Promise.resolve(notices().find((n) => n.type === type && n.webhookId === webhookId)),
        10_000,
        `${type} of ${webhookId}`,
      );

    const failing = await noticeOf("webhook.failing", brokenId);
    assert.equal(failing.lastError, "receiver answered HTTP 500");
    await noticeOf("webhook.failing", flakyId);
    await noticeOf("webhook.recovered", flakyId);
    const disabled = await noticeOf("webhook.disabled", brokenId);
    assert.equal(disabled.reason, "failing");
    assert.ok(disabled.failingSince);
    assert.ok(!notices().some((n) => n.type === "webhook.disabled" && n.webhookId === flakyId));
    assert.ok(
      operator.requests.every((r) => typeof r.headers["webhook-signature"] === "string"),
      "signed like any other",
    );

    const { webhook } = await client.getWebhookStatus({ webhookId: brokenId });
    assert.ok(webhook);
    assert.equal(webhook.active, false);
    assert.equal(webhook.disabledReason, DisabledReason.DISABLED_REASON_FAILING);
    assert.ok(webhook.failingSince);
    const { webhook: flakyNow } = await client.getWebhookStatus({ webhookId: flakyId });
    assert.ok(flakyNow);
    assert.equal(flakyNow.active, true);
    assert.equal(flakyNow.failingSince, undefined, "a success clears failing_since");
    const metrics = await scrape(server.app.httpAddress);
    assert.equal(metrics.value("httpqueue_webhooks_disabled_total", { reason: "failing" }), 1);

    const { webhook: again } = await client.updateWebhook({ webhookId: brokenId, active: true });
    assert.ok(again);
    assert.equal(again.active, true);
    assert.equal(again.disabledReason, DisabledReason.DISABLED_REASON_UNSPECIFIED);
    assert.equal(again.disabledAt, undefined);
    assert.equal(again.failingSince, undefined);
    const { webhook: manual } = await client.updateWebhook({ webhookId: brokenId, active: false });
    assert.ok(manual);
    assert.equal(manual.disabledReason, DisabledReason.DISABLED_REASON_MANUAL);
    assert.equal(notices().filter((n) => n.type === "webhook.disabled").length, 1, "each change told once");
  });
});
