import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { HttpQueueError } from "@httpqueue/sdk";
import {
  startReceiver,
  startTcpProxy,
  until,
  type Receiver,
  type TcpProxy,
  type TestDatabase,
} from "@httpqueue/testkit";
import { reconnectBackoff, RECONNECT_BACKOFF_MAX_S } from "../src/db/client.js";
import { createMigratedDatabase, startTestServer, type TestServer } from "./helpers/server.js";

// After the database refused connections for a while, the pool's connections
// try again within half a second: pushes made during the outage fail with
// UNAVAILABLE rather than wait past their deadline, and once the database is
// back pushes and deliveries go on at once. With postgres.js's own backoff
// (up to 20 s once ten connections of a pool had failed), the pushes after
// the outage timed out and deliveries resumed 10 to 20 s later.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("reconnecting after the database refused connections", { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let receiver: Receiver;
  let server: TestServer;

  before(async () => {
    db = await createMigratedDatabase();
    const url = new URL(db.url);
    proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    url.host = `127.0.0.1:${proxy.port}`;
    receiver = await startReceiver();
    server = await startTestServer({ DATABASE_URL: url.toString(), HEALTH_CHECK_INTERVAL: "200ms" }, db);
  });
  after(async () => {
    await server.stop();
    await receiver.close();
    await proxy.close();
    await db.drop();
  });

  it("the backoff between tries stays under half a second, however many failed", () => {
    for (const retries of [0, 1, 5, 10, 30, 100]) {
      const seconds = reconnectBackoff(retries);
      assert.ok(seconds >= 0 && seconds <= RECONNECT_BACKOFF_MAX_S, `${retries} failures: ${seconds} s`);
    }
  });

  it("answers UNAVAILABLE during the outage, and pushes and delivers within their deadlines after it", async () => {
    const { client } = server;
    await client.registerWebhook({ namespace: "reconnect", event: "e", url: receiver.url });
    await client.pushEvent({ namespace: "reconnect", event: "e", payload: { n: 0 } });
    await receiver.waitForRequests(1);

    await proxy.cut();
    // Eight callers for 3 s: every connection of the pool fails, many times over.
    const codes = new Map<string, number>();
    const stopAt = Date.now() + 3_000;
    await Promise.all(
      Array.from({ length: 8 }, async (_, caller) => {
        for (let i = 0; Date.now() < stopAt; i++) {
          const err = await client
            .pushEvent({ namespace: "reconnect", event: "e", payload: { caller, i } }, { deadlineMs: 3_000 })
            .then(
              () => undefined,
              (e: unknown) => e,
            );
          assert.ok(err instanceof HttpQueueError, "no push succeeds while the database is cut off");
          codes.set(err.codeName, (codes.get(err.codeName) ?? 0) + 1);
          await sleep(50);
        }
      }),
    );
    assert.deepEqual([...codes.keys()], ["UNAVAILABLE"], `codes during the outage: ${JSON.stringify([...codes])}`);

    await proxy.restore();
    const before = receiver.requests.length;
    // Each push has 3 s: several times the longest backoff, far less than postgres.js's own.
    let pushed = false;
    for (let attempt = 0; attempt < 3 && !pushed; attempt++) {
      pushed = await client
        .pushEvent({ namespace: "reconnect", event: "e", payload: { after: attempt } }, { deadlineMs: 3_000 })
        .then(
          () => true,
          () => false,
        );
    }
    assert.ok(pushed, "a push succeeds within 9 s of the database answering again");
    await until(() => receiver.requests.length > before, 10_000, "a delivery after the outage");
  });
});
