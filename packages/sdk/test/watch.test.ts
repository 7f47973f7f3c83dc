import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Metadata, Server, status, type sendUnaryData, type ServerWritableStream } from "@grpc/grpc-js";
import { listenGrpc, until } from "@httpqueue/testkit";
import {
  DeliveryStatus,
  WebhookServiceService,
  type WatchDeliveriesRequest,
  type WatchDeliveriesResponse,
  type WebhookServiceServer,
} from "@httpqueue/proto";
import { Code, createClient, HttpQueueError, type HttpQueueClient } from "../src/index.js";

type Watcher = ServerWritableStream<WatchDeliveriesRequest, WatchDeliveriesResponse>;

const change = (n: number): WatchDeliveriesResponse => ({
  deliveryId: `d${n}`,
  webhookId: "w",
  eventId: `e${n}`,
  namespace: "user",
  event: "signup",
  status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  attemptCount: 1,
  errorMessage: "",
  changedAt: new Date(1_700_000_000_000 + n),
});

/**
 * watchDeliveries against a real gRPC server whose stream is scripted by the
 * request's namespace: headers, messages and the ending each case needs.
 */
describe("watchDeliveries", () => {
  let server: Server;
  let address: string;
  let client: HttpQueueClient;
  /** Every stream the server has seen, and whether the client cancelled it. */
  const streams: { request: WatchDeliveriesRequest; authorization: string | undefined; cancelled: boolean }[] = [];

  before(async () => {
    server = new Server();
    const unimplemented = (_call: unknown, callback: sendUnaryData<never>) => {
      callback({ code: status.UNIMPLEMENTED, details: "not scripted" });
    };
    const handlers: WebhookServiceServer = {
      registerWebhook: unimplemented,
      updateWebhook: unimplemented,
      unregisterWebhook: unimplemented,
      rotateSecret: unimplemented,
      getSigningSecret: unimplemented,
      listWebhooks: unimplemented,
      pushEvent: unimplemented,
      getWebhookStatus: unimplemented,
      listAttempts: unimplemented,
      getEvent: unimplemented,
      listEvents: unimplemented,
      resendDelivery: unimplemented,
      recoverWebhook: unimplemented,
      replayMissed: unimplemented,
      watchDeliveries(call: Watcher) {
        const seen = {
          request: call.request,
          authorization: call.metadata.get("authorization")[0]?.toString(),
          cancelled: false,
        };
        streams.push(seen);
        call.on("cancelled", () => (seen.cancelled = true));
        const { namespace } = call.request;
        if (namespace === "refused") {
          call.emit("error", { code: status.UNAVAILABLE, details: "the database is away" });
          return;
        }
        call.sendMetadata(new Metadata());
        if (namespace === "behind") {
          call.write(change(1));
          call.write(change(2));
          call.emit("error", { code: status.RESOURCE_EXHAUSTED, details: "the watcher fell 1000 changes behind" });
        } else if (namespace === "ending") {
          call.write(change(1));
          call.end();
        } else if (namespace === "many") {
          for (let n = 0; n < 1000; n++) call.write(change(n));
          call.end();
        } else if (namespace === "live") {
          // Three changes, then the stream stays open until the client goes.
          for (let n = 1; n <= 3; n++) call.write(change(n));
        }
        // "quiet": headers only, open until the client goes.
      },
    };
    server.addService(WebhookServiceService, handlers);
    address = await listenGrpc(server);
    client = createClient({ address, token: "t0ken", deadlineMs: 200 });
  });
  after(() => {
    client.close();
    server.forceShutdown();
  });

  it("resolves ready on the server's headers, streams changes in order, and cancels the call on break", async () => {
    const watch = client.watchDeliveries({ namespace: "live", webhookId: "w" });
    await watch.ready;
    const seen: string[] = [];
    for await (const c of watch) {
      seen.push(c.deliveryId);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, ["d1", "d2", "d3"]);
    const stream = streams.at(-1)!;
    assert.deepEqual(stream.request, { namespace: "live", webhookId: "w", eventId: "" });
    assert.equal(stream.authorization, "Bearer t0ken");
    await until(() => stream.cancelled, 5000, "the server to see the stream cancelled");
  });

  it("ends cleanly when the server ends the stream", async () => {
    const seen: string[] = [];
    for await (const c of client.watchDeliveries({ namespace: "ending" })) seen.push(c.deliveryId);
    assert.deepEqual(seen, ["d1"]);
  });

  it("hands over every message of a fast server to a slow reader, in order", async () => {
    let expected = 0;
    for await (const c of client.watchDeliveries({ namespace: "many" })) {
      assert.equal(c.deliveryId, `d${expected++}`);
      if (expected % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(expected, 1000);
  });

  it("throws the server's error as an HttpQueueError after the messages sent before it", async () => {
    const watch = client.watchDeliveries({ namespace: "behind" });
    await watch.ready;
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of watch) seen.push(c.deliveryId);
      })(),
      (err: unknown) => {
        assert.ok(err instanceof HttpQueueError);
        assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
        assert.equal(err.details, "the watcher fell 1000 changes behind");
        return true;
      },
    );
    assert.deepEqual(seen, ["d1", "d2"]);
  });

  it("rejects ready, and throws in the iteration, when the stream fails before its headers", async () => {
    const watch = client.watchDeliveries({ namespace: "refused" });
    await assert.rejects(watch.ready, { name: "HttpQueueError", code: Code.UNAVAILABLE });
    await assert.rejects(
      (async () => {
        for await (const _ of watch) assert.fail("no message expected");
      })(),
      { code: Code.UNAVAILABLE, details: "the database is away" },
    );
    const unreachable = createClient({ address: "127.0.0.1:1" });
    await assert.rejects(unreachable.watchDeliveries().ready, { code: Code.UNAVAILABLE });
    unreachable.close();
  });

  it("has no deadline unless the call sets one (the client's default is for single calls)", async () => {
    const watch = client.watchDeliveries({ namespace: "quiet" });
    await watch.ready;
    const iterator = watch[Symbol.asyncIterator]();
    const next = iterator.next();
    // Well past the client's 200 ms deadline, the stream is still open.
    await new Promise((resolve) => setTimeout(resolve, 600));
    watch.close();
    assert.deepEqual(await next, { done: true, value: undefined });
    await until(() => streams.at(-1)!.cancelled, 5000, "the server to see the stream cancelled");

    const bounded = client.watchDeliveries({ namespace: "quiet" }, { deadlineMs: 300 });
    await bounded.ready;
    await assert.rejects(
      (async () => {
        for await (const _ of bounded) assert.fail("no message expected");
      })(),
      { code: Code.DEADLINE_EXCEEDED },
    );
  });

  it("ends the iteration without an error when the signal aborts", async () => {
    const controller = new AbortController();
    const watch = client.watchDeliveries({ namespace: "quiet" }, { signal: controller.signal });
    await watch.ready;
    setTimeout(() => {
      controller.abort();
    }, 50);
    let count = 0;
    for await (const _ of watch) count++;
    assert.equal(count, 0);
    await until(() => streams.at(-1)!.cancelled, 5000, "the server to see the stream cancelled");

    const before = streams.length;
    const aborted = client.watchDeliveries({ namespace: "quiet" }, { signal: AbortSignal.abort() });
    await assert.rejects(aborted.ready, { code: Code.CANCELLED });
    for await (const _ of aborted) assert.fail("no message expected");
    assert.equal(streams.length, before, "no call was made");
  });

  it("rejects ready when closed before the headers, and refuses what it cannot send", async () => {
    const quiet = client.watchDeliveries({ namespace: "quiet" });
    quiet.close();
    quiet.close();
    await assert.rejects(quiet.ready, { code: Code.CANCELLED });

    const damaged = client.watchDeliveries({ namespace: "a\uD800" });
    await assert.rejects(damaged.ready, { code: Code.INVALID_ARGUMENT, message: /namespace: holds a lone surrogate/ });
    await assert.rejects(
      (async () => {
        for await (const _ of damaged) assert.fail("no message expected");
      })(),
      { code: Code.INVALID_ARGUMENT },
    );
    await assert.rejects(client.watchDeliveries({}, { deadlineMs: 0 }).ready, {
      code: Code.INVALID_ARGUMENT,
      message: /deadlineMs/,
    });

    const closed = createClient({ address });
    closed.close();
    await assert.rejects(closed.watchDeliveries().ready, { code: Code.FAILED_PRECONDITION });
  });
});
