import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ServerResponse } from "node:http";
import { DeliveryStatus } from "@httpqueue/sdk";
import { eventually, startReceiver, type Receiver } from "@httpqueue/testkit";
import { httpGet, scrape } from "./helpers/http.js";
import { startTestServer, type TestServer, waitForDelivery } from "./helpers/server.js";

/** Short enough that a test sees the queue change, long enough to be a real cache. */
const METRICS_ENV = { METRICS_QUERY_INTERVAL: "50ms" };

describe("metrics", () => {
  let server: TestServer;
  const receivers: Receiver[] = [];
  before(async () => {
    server = await startTestServer(METRICS_ENV);
  });
  after(async () => {
    await server.stop();
    await Promise.all(receivers.map((r) => r.close()));
  });

  const metrics = () => scrape(server.app.httpAddress);

  it("serves Prometheus text with process metrics", async () => {
    const res = await httpGet(server.app.httpAddress, "/metrics");
    assert.equal(res.status, 200);
    assert.match(res.contentType, /^text\/plain; version=0\.0\.4/);
    const m = await metrics();
    assert.ok((m.value("process_cpu_user_seconds_total") ?? -1) >= 0, "process metrics");
    assert.ok(m.value("nodejs_heap_size_used_bytes") !== undefined, "Node.js metrics");
    assert.equal(m.value("httpqueue_build_info", { version: "0.1.0" }), 1);
    for (const outcome of ["succeeded", "retrying", "failed", "expired", "cancelled"]) {
      assert.notEqual(m.value("httpqueue_deliveries_total", { outcome }), undefined, `${outcome} starts at zero`);
    }
  });

  it("counters move after a push and a delivery", async () => {
    // The first attempt fails, the retry succeeds.
    const receiver = await startReceiver((_req, i) => (i === 0 ? 500 : 200));
    receivers.push(receiver);
    const before = await metrics();
    const count = (m: typeof before, name: string, labels: Record<string, string> = {}) => m.value(name, labels) ?? 0;

    const { webhookId } = await server.client.registerWebhook({
      namespace: "metrics",
      event: "moved",
      url: receiver.url,
    });
    const { eventId } = await server.client.pushEvent({ namespace: "metrics", event: "moved", payload: "{}" });
    await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const m = await metrics();
    const delta = (name: string, labels: Record<string, string> = {}) =>
      count(m, name, labels) - count(before, name, labels);

    assert.equal(delta("httpqueue_webhooks_registered_total"), 1);
    assert.equal(delta("httpqueue_events_pushed_total", { namespace: "metrics", event: "moved" }), 1);
    assert.equal(delta("httpqueue_deliveries_total", { outcome: "retrying" }), 1);
    assert.equal(delta("httpqueue_deliveries_total", { outcome: "succeeded" }), 1);
    assert.equal(delta("httpqueue_deliveries_total", { outcome: "failed" }), 0);
    assert.equal(delta("httpqueue_delivery_attempt_duration_seconds_count", { result: "5xx" }), 1);
    assert.equal(delta("httpqueue_delivery_attempt_duration_seconds_count", { result: "2xx" }), 1);
    assert.equal(delta("httpqueue_delivery_end_to_end_seconds_count"), 1);
    assert.ok(delta("httpqueue_delivery_end_to_end_seconds_sum") > 0, "the end-to-end latency is measured");
    const rpc = { grpc_type: "unary", grpc_service: "httpqueue.v1.WebhookService", grpc_method: "PushEvent" };
    assert.equal(delta("grpc_server_started_total", rpc), 1);
    assert.equal(delta("grpc_server_handled_total", { ...rpc, grpc_code: "OK" }), 1);
    assert.equal(delta("grpc_server_handling_seconds_count", rpc), 1);
    assert.equal(count(m, "httpqueue_deliveries_in_flight"), 0);
    await eventually(async () =>
      (await metrics()).value("httpqueue_webhooks", { state: "active" }) ? true : undefined,
    );

    // Bounded labels: no id, no URL.
    for (const unbounded of [webhookId, eventId, receiver.url]) {
      assert.ok(!m.text.includes(unbounded), `the metrics contain ${unbounded}`);
    }
  });

  it("counts failed RPCs by status code", async () => {
    const before = await metrics();
    const labels = {
      grpc_type: "unary",
      grpc_service: "httpqueue.v1.WebhookService",
      grpc_method: "PushEvent",
      grpc_code: "INVALID_ARGUMENT",
    };
    await assert.rejects(server.client.pushEvent({ namespace: "metrics", event: "bad", payload: "not json" }));
    const m = await metrics();
    assert.equal(
      (m.value("grpc_server_handled_total", labels) ?? 0) - (before.value("grpc_server_handled_total", labels) ?? 0),
      1,
    );
  });

  it("shows queue depth, deliveries in flight, duplicates and cancellations", async () => {
    let held: ServerResponse | undefined;
    const hanging = await startReceiver((_req, _i, res) => {
      held = res;
      return "hang";
    });
    // Asks for a long pause: the retry waits in the queue, scheduled.
    const later = await startReceiver(() => ({ status: 503, headers: { "retry-after": "3600" } }));
    receivers.push(hanging, later);
    const before = await metrics();
    const cancelledBefore = before.value("httpqueue_deliveries_total", { outcome: "cancelled" }) ?? 0;

    await server.client.registerWebhook({ namespace: "metrics", event: "hang", url: hanging.url });
    const { webhookId } = await server.client.registerWebhook({ namespace: "metrics", event: "later", url: later.url });
    await server.client.pushEvent({ namespace: "metrics", event: "hang", payload: "{}" });
    const { eventId } = await server.client.pushEvent({
      namespace: "metrics",
      event: "later",
      payload: "{}",
      idempotencyKey: "once",
    });
    const repeat = await server.client.pushEvent({
      namespace: "metrics",
      event: "later",
      payload: "{}",
      idempotencyKey: "once",
    });
    assert.equal(repeat.duplicate, true);
    await hanging.waitForRequests(1);
    await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_RETRYING);

    const deliver = (state: string) => ({ task: "httpqueue.deliver", state });
    const busy = await eventually(async () => {
      const m = await metrics();
      return m.value("httpqueue_queue_jobs", deliver("locked")) === 1 &&
        m.value("httpqueue_queue_jobs", deliver("scheduled")) === 1
        ? m
        : undefined;
    });
    assert.equal(busy.value("httpqueue_deliveries_in_flight"), 1);
    // The hanging attempt's delivery is due (not yet recorded), the other one's retry waits an hour.
    assert.equal(busy.value("httpqueue_deliveries_waiting", { state: "due" }), 1);
    assert.equal(busy.value("httpqueue_deliveries_waiting", { state: "scheduled" }), 1);
    assert.ok((busy.value("httpqueue_oldest_due_delivery_seconds") ?? -1) >= 0);
    assert.equal(busy.value("httpqueue_webhooks_delivering"), 1, "the hanging receiver's webhook");
    assert.equal(busy.value("httpqueue_queue_jobs", deliver("pending")), 0);
    assert.equal(busy.value("httpqueue_queue_jobs", deliver("failed")), 0);
    assert.equal(busy.value("httpqueue_queue_jobs", { task: "httpqueue.fanout", state: "pending" }), 0);
    assert.equal(
      (busy.value("httpqueue_events_deduplicated_total") ?? 0) -
        (before.value("httpqueue_events_deduplicated_total") ?? 0),
      1,
    );
    assert.equal(
      (busy.value("httpqueue_events_pushed_total", { namespace: "metrics", event: "later" }) ?? 0) -
        (before.value("httpqueue_events_pushed_total", { namespace: "metrics", event: "later" }) ?? 0),
      1,
      "a duplicate is not a new event",
    );

    await server.client.unregisterWebhook({ webhookId });
    held?.writeHead(200).end("ok");
    const idle = await eventually(async () => {
      const m = await metrics();
      return m.value("httpqueue_queue_jobs", deliver("locked")) === 0 &&
        m.value("httpqueue_queue_jobs", deliver("scheduled")) === 0
        ? m
        : undefined;
    });
    assert.equal(idle.value("httpqueue_deliveries_in_flight"), 0);
    assert.equal(idle.value("httpqueue_deliveries_waiting", { state: "due" }), 0);
    assert.equal(idle.value("httpqueue_deliveries_waiting", { state: "scheduled" }), 0);
    assert.equal(idle.value("httpqueue_oldest_due_delivery_seconds"), 0);
    assert.equal((idle.value("httpqueue_deliveries_total", { outcome: "cancelled" }) ?? 0) - cancelledBefore, 1);
  });

  it("labels at most METRICS_EVENT_LABEL_LIMIT namespace/event pairs and folds the rest into _other", async () => {
    const limited = await startTestServer({ ...METRICS_ENV, METRICS_EVENT_LABEL_LIMIT: "2" });
    try {
      for (const event of ["a", "b", "c", "a", "d"]) {
        await limited.client.pushEvent({ namespace: "limit", event, payload: "{}" });
      }
      const m = await scrape(limited.app.httpAddress);
      const pairs = m.samples.filter((s) => s.name === "httpqueue_events_pushed_total").map((s) => s.labels);
      assert.deepEqual(pairs.map((l) => `${l.namespace}/${l.event}`).sort(), ["_other/_other", "limit/a", "limit/b"]);
      assert.equal(m.value("httpqueue_events_pushed_total", { namespace: "limit", event: "a" }), 2);
      assert.equal(m.value("httpqueue_events_pushed_total", { namespace: "_other", event: "_other" }), 2);
    } finally {
      await limited.stop();
    }
  });

  it("keeps each server's metrics apart, even in one process", async () => {
    const other = await startTestServer(METRICS_ENV);
    try {
      await other.client.pushEvent({ namespace: "apart", event: "e", payload: "{}" });
      assert.equal(
        (await scrape(other.app.httpAddress)).value("httpqueue_events_pushed_total", {
          namespace: "apart",
          event: "e",
        }),
        1,
      );
      assert.equal(
        (await metrics()).value("httpqueue_events_pushed_total", { namespace: "apart", event: "e" }),
        undefined,
      );
    } finally {
      await other.stop();
    }
  });
});
