import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Server, status, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { listenGrpc } from "@httpqueue/testkit";
import {
  DeliveryStatus,
  Webhook,
  WebhookServiceService,
  type GetWebhookStatusRequest,
  type GetWebhookStatusResponse,
  type ListWebhooksRequest,
  type ListWebhooksResponse,
  type PushEventRequest,
  type PushEventResponse,
  type WebhookServiceServer,
} from "@httpqueue/proto";
import { Code, createClient, HttpQueueError } from "../src/index.js";

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
      updateWebhook: unimplemented,
      unregisterWebhook: unimplemented,
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
