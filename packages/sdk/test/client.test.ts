import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import {
  WebhookServiceService,
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

  before(async () => {
    server = new Server();
    const unimplemented = (_call: unknown, callback: sendUnaryData<never>) => {
      callback({ code: status.UNIMPLEMENTED, details: "not scripted" });
    };
    const handlers: WebhookServiceServer = {
      registerWebhook: unimplemented,
      updateWebhook: unimplemented,
      unregisterWebhook: unimplemented,
      getWebhookStatus: unimplemented,
      pushEvent(call: ServerUnaryCall<PushEventRequest, PushEventResponse>, callback) {
        seenAuthorization.push(call.metadata.get("authorization")[0]?.toString());
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
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(err);
        else resolve(p);
      });
    });
    address = `127.0.0.1:${port}`;
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

  it("reports an unreachable server as UNAVAILABLE", async () => {
    const client = createClient({ address: "127.0.0.1:1", deadlineMs: 2000 });
    await assert.rejects(client.pushEvent({ namespace: "n" }), { code: Code.UNAVAILABLE });
    client.close();
  });
});
