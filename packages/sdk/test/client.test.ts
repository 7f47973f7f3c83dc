import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Server, status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from "@grpc/grpc-js";
import { listenGrpc } from "@httpqueue/testkit";
import {
  Attempt,
  DeliveryStatus,
  Event,
  Webhook,
  WebhookServiceService,
  type GetEventRequest,
  type GetEventResponse,
  type GetWebhookStatusRequest,
  type GetWebhookStatusResponse,
  type ListAttemptsRequest,
  type ListAttemptsResponse,
  type ListEventsRequest,
  type ListEventsResponse,
  type ListWebhooksRequest,
  type ListWebhooksResponse,
  type PushEventRequest,
  type PushEventResponse,
  type RecoverWebhookRequest,
  type RecoverWebhookResponse,
  type ReplayMissedRequest,
  type ReplayMissedResponse,
  type ResendDeliveryRequest,
  type ResendDeliveryResponse,
  type WebhookServiceServer,
} from "@httpqueue/proto";
import { Code, createClient, HttpQueueError } from "../src/index.js";

const deliveryOf = (id: string) => ({
  id,
  webhookId: "w",
  eventId: "e",
  status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  attemptCount: 1,
  maxAttempts: 10,
  responseCode: 200,
  responseBody: "",
  errorMessage: "",
});

/**
 * A real gRPC server with scripted answers: this file tests the client's own
 * behaviour (errors, deadlines, metadata, paging). The server package's tests
 * run the client against the real service.
 */
describe("client", () => {
  let server: Server;
  let address: string;
  const seenAuthorization: (string | undefined)[] = [];
  const seenUserAgents: string[] = [];
  const seenPayloads: string[] = [];

  before(async () => {
    server = new Server();
    const unimplemented = (_call: unknown, callback: sendUnaryData<never>) => {
      callback({ code: status.UNIMPLEMENTED, details: "not scripted" });
    };
    const handlers: WebhookServiceServer = {
      registerWebhook: unimplemented,
      watchDeliveries(call: ServerWritableStream<unknown, unknown>) {
        call.emit("error", { code: status.UNIMPLEMENTED, details: "not scripted" });
      },
      listAttempts(call: ServerUnaryCall<ListAttemptsRequest, ListAttemptsResponse>, callback) {
        // Five attempts, newest first, served `pageSize` at a time.
        seenAuthorization.push(call.metadata.get("authorization")[0]?.toString());
        const start = Number(call.request.pageToken || "0");
        const end = Math.min(start + (call.request.pageSize || 20), 5);
        const attempts = [];
        for (let i = start; i < end; i++) {
          attempts.push(
            Attempt.fromPartial({ deliveryId: call.request.deliveryId, attempt: 5 - i, responseCode: 500 }),
          );
        }
        callback(null, { attempts, nextPageToken: end < 5 ? String(end) : "" });
      },
      getEvent(call: ServerUnaryCall<GetEventRequest, GetEventResponse>, callback) {
        if (call.request.eventId !== "e1") {
          callback({ code: status.NOT_FOUND, details: `event ${call.request.eventId} not found` });
          return;
        }
        callback(null, {
          event: Event.fromPartial({ id: "e1", payload: "{}" }),
          counts: [{ status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, count: 2 }],
        });
      },
      listEvents(call: ServerUnaryCall<ListEventsRequest, ListEventsResponse>, callback) {
        // Three events served one at a time; each echoes the filters in its metadata.
        const { namespace, event, createdAfter, createdBefore, pageToken } = call.request;
        const i = Number(pageToken || "0");
        const filters = {
          namespace,
          event,
          after: createdAfter?.toISOString() ?? "",
          before: createdBefore?.toISOString() ?? "",
        };
        callback(null, {
          events: [Event.fromPartial({ id: `e${i}`, namespace, event, metadata: filters })],
          nextPageToken: i < 2 ? String(i + 1) : "",
        });
      },
      resendDelivery(call: ServerUnaryCall<ResendDeliveryRequest, ResendDeliveryResponse>, callback) {
        callback(null, {
          delivery: { ...deliveryOf(call.request.deliveryId), status: DeliveryStatus.DELIVERY_STATUS_PENDING },
        });
      },
      recoverWebhook(call: ServerUnaryCall<RecoverWebhookRequest, RecoverWebhookResponse>, callback) {
        if (!call.request.since) {
          callback({ code: status.INVALID_ARGUMENT, details: "since: is required" });
          return;
        }
        callback(null, { resent: call.request.since.getTime() === 0 ? 3 : 1 });
      },
      replayMissed(call: ServerUnaryCall<ReplayMissedRequest, ReplayMissedResponse>, callback) {
        callback(null, { queued: call.request.since ? 4 : 0 });
      },
      updateWebhook: unimplemented,
      unregisterWebhook: unimplemented,
      rotateSecret: unimplemented,
      getSigningSecret: unimplemented,
      getWebhookStatus(call: ServerUnaryCall<GetWebhookStatusRequest, GetWebhookStatusResponse>, callback) {
        // Echoes the identifier; by webhook, five deliveries served `pageSize` at a time.
        const { identifier, pageSize, pageToken } = call.request;
        if (!identifier) {
          callback({ code: status.INVALID_ARGUMENT, details: "identifier: set webhook_id or event_id" });
          return;
        }
        const start = Number(pageToken || "0");
        const end = identifier.$case === "webhookId" ? Math.min(start + (pageSize || 20), 5) : 1;
        const deliveries = [];
        for (let i = start; i < end; i++) {
          deliveries.push({
            id: `d${i}`,
            webhookId: identifier.$case === "webhookId" ? identifier.value : "w",
            eventId: identifier.$case === "eventId" ? identifier.value : `e${i}`,
            status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
            attemptCount: 1,
            maxAttempts: 10,
            responseCode: 200,
            responseBody: "",
            errorMessage: "",
          });
        }
        const more = identifier.$case === "webhookId" && end < 5;
        callback(null, { counts: [], deliveries, nextPageToken: more ? String(end) : "" });
      },
      pushEvent(call: ServerUnaryCall<PushEventRequest, PushEventResponse>, callback) {
        seenAuthorization.push(call.metadata.get("authorization")[0]?.toString());
        seenUserAgents.push(String(call.metadata.get("user-agent")[0]));
        seenPayloads.push(call.request.payload);
        if (call.request.namespace === "slow") {
          setTimeout(() => {
            callback(null, { eventId: "late", duplicate: false });
          }, 2000);
          return;
        }
        if (call.request.namespace === "bad") {
          callback({ code: status.INVALID_ARGUMENT, details: "namespace: is bad" });
          return;
        }
        callback(null, { eventId: `e-${call.request.event}`, duplicate: call.request.idempotencyKey !== "" });
      },
      listWebhooks(call: ServerUnaryCall<ListWebhooksRequest, ListWebhooksResponse>, callback) {
        // Seven webhooks, served `pageSize` at a time; the token is the next index.
        const start = Number(call.request.pageToken || "0");
        const end = Math.min(start + call.request.pageSize, 7);
        const webhooks = [];
        for (let i = start; i < end; i++) {
          webhooks.push({
            ...Webhook.fromPartial({}),
            id: `w${i}`,
            namespace: call.request.namespace,
            event: "e",
            url: "http://x",
            method: "POST",
            headers: {},
            timeout: 30,
            active: true,
            description: "",
          });
        }
        callback(null, { webhooks, nextPageToken: end < 7 ? String(end) : "" });
      },
    };
    server.addService(WebhookServiceService, handlers);
    address = await listenGrpc(server);
  });
  after(() => {
    server.forceShutdown();
  });

  it("resolves with the typed response and fills defaults in requests", async () => {
    const client = createClient({ address });
    const response = await client.pushEvent({ namespace: "n", event: "signup", payload: "{}" });
    assert.deepEqual(response, { eventId: "e-signup", duplicate: false });
    client.close();
  });

  it("rejects with an HttpQueueError carrying the code, its name and the message", async () => {
    const client = createClient({ address });
    await assert.rejects(client.pushEvent({ namespace: "bad" }), (err: unknown) => {
      assert.ok(err instanceof HttpQueueError);
      assert.equal(err.code, Code.INVALID_ARGUMENT);
      assert.equal(err.codeName, "INVALID_ARGUMENT");
      assert.equal(err.details, "namespace: is bad");
      assert.equal(err.message, "INVALID_ARGUMENT: namespace: is bad");
      assert.ok(err.cause instanceof Error);
      return true;
    });
    client.close();
  });

  it("applies the default deadline, and a per-call one", async () => {
    const client = createClient({ address, deadlineMs: 200 });
    await assert.rejects(client.pushEvent({ namespace: "slow" }), { code: Code.DEADLINE_EXCEEDED });
    const patient = await client.pushEvent({ namespace: "slow" }, { deadlineMs: 5000 });
    assert.equal(patient.eventId, "late");
    client.close();
  });

  it("cancels a call through an AbortSignal", async () => {
    const client = createClient({ address });
    const controller = new AbortController();
    const call = client.pushEvent({ namespace: "slow" }, { signal: controller.signal });
    setTimeout(() => {
      controller.abort();
    }, 50);
    await assert.rejects(call, { code: Code.CANCELLED });
    await assert.rejects(client.pushEvent({ namespace: "n" }, { signal: controller.signal }), {
      code: Code.CANCELLED,
    });
    client.close();
  });

  it("sends the token as a bearer authorization header", async () => {
    const client = createClient({ address, token: "t0ken" });
    await client.pushEvent({ namespace: "n" });
    assert.equal(seenAuthorization.at(-1), "Bearer t0ken");
    client.close();
    const anonymous = createClient({ address });
    await anonymous.pushEvent({ namespace: "n" });
    assert.equal(seenAuthorization.at(-1), undefined);
    anonymous.close();
  });

  it("iterates over every page of webhooks", async () => {
    const client = createClient({ address });
    const ids: string[] = [];
    for await (const webhook of client.listWebhooksAsync({ namespace: "ns", pageSize: 3 })) ids.push(webhook.id);
    assert.deepEqual(ids, ["w0", "w1", "w2", "w3", "w4", "w5", "w6"]);
    client.close();
  });

  it("sends string payloads as they are and JSON-encodes anything else", async () => {
    const client = createClient({ address });
    await client.pushEvent({ namespace: "n", payload: '{ "raw":  true }' });
    await client.pushEvent({ namespace: "n", payload: { user: { id: 7 }, tags: ["a"] } });
    await client.pushEvent({ namespace: "n", payload: [1, "two", null] });
    await client.pushEvent({ namespace: "n", payload: Buffer.from('{"bytes":1}') });
    await client.pushEvent({ namespace: "n", payload: 42 });
    assert.deepEqual(seenPayloads.slice(-5), [
      '{ "raw":  true }',
      '{"user":{"id":7},"tags":["a"]}',
      '[1,"two",null]',
      '{"bytes":1}',
      "42",
    ]);
    client.close();
  });

  it("rejects, without a call, a payload that cannot be JSON-encoded", async () => {
    const client = createClient({ address });
    const before = seenPayloads.length;
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    for (const payload of [circular, { big: 1n }, () => 1]) {
      await assert.rejects(client.pushEvent({ namespace: "n", payload }), (err: unknown) => {
        assert.ok(err instanceof HttpQueueError);
        assert.equal(err.code, Code.INVALID_ARGUMENT);
        assert.match(err.details, /^payload: .*JSON/);
        return true;
      });
    }
    assert.equal(seenPayloads.length, before);
    client.close();
  });

  it("asks for status by { webhookId }, { eventId } or the generated identifier union", async () => {
    const client = createClient({ address });
    const byWebhook = await client.getWebhookStatus({ webhookId: "w1", pageSize: 2 });
    assert.deepEqual(
      byWebhook.deliveries.map((d) => [d.id, d.webhookId]),
      [
        ["d0", "w1"],
        ["d1", "w1"],
      ],
    );
    assert.equal(byWebhook.nextPageToken, "2");
    const next = await client.getWebhookStatus({ webhookId: "w1", pageSize: 2, pageToken: byWebhook.nextPageToken });
    assert.deepEqual(
      next.deliveries.map((d) => d.id),
      ["d2", "d3"],
    );
    const byEvent = await client.getWebhookStatus({ eventId: "e7" });
    assert.equal(byEvent.deliveries[0]?.eventId, "e7");
    const generated = await client.getWebhookStatus({ identifier: { $case: "eventId", value: "e8" } });
    assert.equal(generated.deliveries[0]?.eventId, "e8");
    await assert.rejects(client.getWebhookStatus({}), { code: Code.INVALID_ARGUMENT });
    client.close();
  });

  it("iterates over every delivery of a webhook", async () => {
    const client = createClient({ address });
    const ids: string[] = [];
    for await (const delivery of client.listDeliveriesAsync({ webhookId: "w1", pageSize: 2 })) ids.push(delivery.id);
    assert.deepEqual(ids, ["d0", "d1", "d2", "d3", "d4"]);
    client.close();
  });

  it("lists a delivery's attempts, one page or all of them, with the token", async () => {
    const client = createClient({ address, token: "t0ken" });
    const page = await client.listAttempts({ deliveryId: "d1", pageSize: 2 });
    assert.deepEqual(
      page.attempts.map((a) => [a.deliveryId, a.attempt]),
      [
        ["d1", 5],
        ["d1", 4],
      ],
    );
    assert.equal(page.nextPageToken, "2");
    assert.equal(seenAuthorization.at(-1), "Bearer t0ken");
    const all: number[] = [];
    for await (const attempt of client.listAttemptsAsync({ deliveryId: "d1", pageSize: 2 })) all.push(attempt.attempt);
    assert.deepEqual(all, [5, 4, 3, 2, 1]);
    client.close();
  });

  it("gets an event, and iterates over events with their filters", async () => {
    const client = createClient({ address });
    const { event, counts } = await client.getEvent({ eventId: "e1" });
    assert.equal(event?.id, "e1");
    assert.deepEqual(counts, [{ status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, count: 2 }]);
    await assert.rejects(client.getEvent({ eventId: "nope" }), {
      code: Code.NOT_FOUND,
      details: "event nope not found",
    });
    const since = new Date("2026-01-02T03:04:05.000Z");
    const events = [];
    for await (const e of client.listEventsAsync({ namespace: "user", event: "signup", createdAfter: since })) {
      events.push(e);
    }
    assert.deepEqual(
      events.map((e) => e.id),
      ["e0", "e1", "e2"],
    );
    assert.deepEqual(events[2]?.metadata, {
      namespace: "user",
      event: "signup",
      after: since.toISOString(),
      before: "",
    });
    const first = await client.listEvents({});
    assert.equal(first.nextPageToken, "1");
    client.close();
  });

  it("resends a delivery, recovers and replays a webhook", async () => {
    const client = createClient({ address });
    const { delivery } = await client.resendDelivery({ deliveryId: "d9" });
    assert.ok(delivery);
    assert.equal(delivery.id, "d9");
    assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_PENDING);
    assert.deepEqual(await client.recoverWebhook({ webhookId: "w", since: new Date(0) }), { resent: 3 });
    await assert.rejects(client.recoverWebhook({ webhookId: "w" }), { code: Code.INVALID_ARGUMENT });
    assert.deepEqual(await client.replayMissed({ webhookId: "w", since: new Date() }), { queued: 4 });
    client.close();
  });

  it("refuses, without a call, text that UTF-8 cannot carry in the new requests", async () => {
    const client = createClient({ address });
    await assert.rejects(client.listEvents({ namespace: "a\uD800" }), {
      code: Code.INVALID_ARGUMENT,
      message: /namespace: holds a lone surrogate/,
    });
    await assert.rejects(client.resendDelivery({ deliveryId: "\uDC00" }), {
      message: /^INVALID_ARGUMENT: delivery_id/,
    });
    client.close();
  });

  it("identifies itself in the user-agent", async () => {
    const client = createClient({ address, userAgent: "my-app/1.2" });
    await client.pushEvent({ namespace: "n" });
    assert.match(seenUserAgents.at(-1)!, /^my-app\/1\.2 httpqueue-sdk-node\/\d+\.\d+\.\d+/);
    client.close();
  });

  it("rejects calls after close() with FAILED_PRECONDITION", async () => {
    const client = createClient({ address });
    await client.pushEvent({ namespace: "n" });
    client.close();
    await assert.rejects(client.pushEvent({ namespace: "n" }), (err: unknown) => {
      assert.ok(err instanceof HttpQueueError);
      assert.equal(err.code, Code.FAILED_PRECONDITION);
      assert.match(err.message, /closed/);
      return true;
    });
  });

  it("refuses bad options with a TypeError, and a bad per-call deadline with INVALID_ARGUMENT", async () => {
    assert.throws(() => createClient({ address: "" }), { name: "TypeError", message: /address is required/ });
    assert.throws(() => createClient({ address, deadlineMs: 0 }), { name: "TypeError", message: /deadlineMs/ });
    const client = createClient({ address });
    await assert.rejects(client.pushEvent({ namespace: "n" }, { deadlineMs: -1 }), {
      code: Code.INVALID_ARGUMENT,
      message: /deadlineMs/,
    });
    client.close();
  });

  it("reports an unreachable server as UNAVAILABLE", async () => {
    const client = createClient({ address: "127.0.0.1:1", deadlineMs: 2000 });
    await assert.rejects(client.pushEvent({ namespace: "n" }), { code: Code.UNAVAILABLE });
    client.close();
  });
});
