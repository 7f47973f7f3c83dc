import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import type { WatchDeliveriesResponse } from "@httpqueue/proto";
import { createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import {
  eventually,
  startReceiver,
  startTcpProxy,
  terminate,
  type Receiver,
  type ServerProcess,
  type TestDatabase,
} from "@httpqueue/testkit";
import { HttpQueueError } from "@httpqueue/sdk";
import { scrape } from "./helpers/http.js";
import { createMigratedDatabase, spawnServer, startTestServer } from "./helpers/server.js";

// WatchDeliveries across servers, and a watcher that does not read.

const SUCCEEDED = DeliveryStatus.DELIVERY_STATUS_SUCCEEDED;

describe("watching deliveries", () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const receiver = async (respond: Parameters<typeof startReceiver>[0]): Promise<Receiver> => {
    const r = await startReceiver(respond);
    cleanups.push(() => r.close());
    return r;
  };

  it("a watcher on server A sees the deliveries server B makes", async () => {
    const db: TestDatabase = await createMigratedDatabase();
    cleanups.push(() => db.drop());
    const stop = (server: ServerProcess) => terminate(server);
    // A delivers to one webhook at a time, and is kept busy by a receiver that never answers.
    const a = await spawnServer({ DATABASE_URL: db.url, WORKER_CONCURRENCY: "1" });
    cleanups.push(() => stop(a));
    const clientA = createClient({ address: a.address });
    cleanups.push(() => {
      clientA.close();
    });
    const hanging = await receiver(() => "hang");
    await clientA.registerWebhook({ namespace: "busy", event: "e", url: hanging.url, timeout: 300 });
    await clientA.pushEvent({ namespace: "busy", event: "e", payload: {} });
    await hanging.waitForRequests(1);

    const b = await spawnServer({ DATABASE_URL: db.url });
    cleanups.push(() => stop(b));
    const clientB: HttpQueueClient = createClient({ address: b.address });
    cleanups.push(() => {
      clientB.close();
    });
    const target = await receiver(() => 200);
    const webhooks = await Promise.all(
      ["one", "two", "three"].map((event) =>
        clientB.registerWebhook({ namespace: "two", event, url: target.url }).then((r) => r.webhookId),
      ),
    );

    const watch = clientA.watchDeliveries({ namespace: "two" });
    await watch.ready;
    const seen: WatchDeliveriesResponse[] = [];
    const reading = (async () => {
      for await (const update of watch) seen.push(update);
    })();
    const events: string[] = [];
    for (let i = 0; i < 30; i++) {
      const event = ["one", "two", "three"][i % 3] ?? "one";
      events.push((await clientB.pushEvent({ namespace: "two", event, payload: { i } })).eventId);
    }
    await target.waitForRequests(30);
    await eventually(
      () => Promise.resolve(seen.filter((u) => u.status === SUCCEEDED).length >= 30 ? true : undefined),
      10_000,
    );
    watch.close();
    await reading;

    const succeeded = seen.filter((u) => u.status === SUCCEEDED);
    assert.deepEqual(new Set(succeeded.map((u) => u.eventId)), new Set(events), "every event's success, seen on A");
    assert.ok(succeeded.every((u) => webhooks.includes(u.webhookId) && u.attempt?.responseCode === 200));
    // Made by B: A's one worker slot was held by the hanging receiver all along.
    const attemptsBy = (server: ServerProcess) =>
      events.filter(
        (id) => server.output().includes(`"eventId":"${id}"`) && server.output().includes("delivery attempt"),
      );
    assert.equal(attemptsBy(b).length, 30, "B made the attempts");
    assert.equal(attemptsBy(a).length, 0, "A made none");
  });

  it("ends a watcher that does not read with RESOURCE_EXHAUSTED, and deliveries go on", async () => {
    const server = await startTestServer({ WATCH_BUFFER: "100" });
    cleanups.push(() => server.stop());
    const target = await receiver(() => 200);
    const { webhookId } = await server.client.registerWebhook({ namespace: "slow", event: "e", url: target.url });

    // Opened and never iterated: the SDK holds 64 messages, then stops taking more (HTTP/2 flow control
    // then holds the server's writes; a grpc-js stream with no 'data' listener would instead take everything).
    const watch = server.client.watchDeliveries({ webhookId });
    await watch.ready;

    const count = 400;
    const payload = { padding: "x".repeat(2000) };
    for (let i = 0; i < count; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, () => server.client.pushEvent({ namespace: "slow", event: "e", payload })),
      );
    }
    await target.waitForRequests(count, 30_000);
    const ended = async () => {
      return (await scrape(server.app.httpAddress)).value("httpqueue_watchers_ended_total", { reason: "behind" });
    };
    // Ended once its client has left WATCH_BUFFER messages unread for 10 s.
    await eventually(async () => ((await ended()) === 1 ? true : undefined), 30_000, "the watcher was ended");
    const { counts } = await server.client.getWebhookStatus({ webhookId });
    assert.deepEqual(
      counts.map((c) => [c.status, c.count]),
      [[SUCCEEDED, count]],
      "every delivery made, none held back by the watcher",
    );

    // Reading now: what the SDK held, then why it ended.
    let received = 0;
    const error = await (async () => {
      try {
        for await (const _ of watch) received++;
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    assert.ok(error instanceof HttpQueueError, String(error));
    assert.equal(error.code, status.RESOURCE_EXHAUSTED, error.details);
    assert.match(error.details, /left 100 changes unread for 10s \(WATCH_BUFFER\)/);
    assert.ok(received > 0 && received < count * 2, `${received} updates before the end`);
    assert.equal((await scrape(server.app.httpAddress)).value("httpqueue_watchers"), 0, "no watcher left");
  });

  it("ends watchers with UNAVAILABLE when the database connection is lost, and watching again works", async () => {
    const db = await createMigratedDatabase();
    cleanups.push(() => db.drop());
    const url = new URL(db.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    cleanups.push(() => proxy.close());
    url.host = `127.0.0.1:${proxy.port}`;
    const server = await startTestServer({ DATABASE_URL: url.toString() }, { ...db, url: url.toString() });
    cleanups.push(() => server.stop());
    const target = await receiver(() => 200);
    const { webhookId } = await server.client.registerWebhook({ namespace: "cut", event: "e", url: target.url });

    const first = server.client.watchDeliveries({ webhookId });
    await first.ready;
    const ended = (async () => {
      try {
        for await (const _ of first) {
          // nothing is pushed meanwhile
        }
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    await proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await proxy.restore();
    const err = await ended;
    assert.ok(err instanceof HttpQueueError, String(err));
    assert.equal(err.code, status.UNAVAILABLE);
    assert.match(err.details, /lost its database connection/);

    const again = await eventually(async () => {
      const watch = server.client.watchDeliveries({ webhookId });
      try {
        await watch.ready;
        return watch;
      } catch {
        watch.close();
        return undefined;
      }
    }, 20_000);
    const seen: WatchDeliveriesResponse[] = [];
    const reading = (async () => {
      for await (const update of again) seen.push(update);
    })();
    await eventually(() => server.client.pushEvent({ namespace: "cut", event: "e", payload: {} }), 20_000);
    await eventually(() => Promise.resolve(seen.some((u) => u.status === SUCCEEDED) ? true : undefined), 20_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    again.close();
    await reading;
    assert.deepEqual(
      seen.map((u) => DeliveryStatus[u.status]),
      ["DELIVERY_STATUS_PENDING", "DELIVERY_STATUS_SUCCEEDED"],
      "each change once (one listener, restored after the reconnection)",
    );
  });
});
