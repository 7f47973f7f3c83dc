import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import { eventually, until, type ReceivedRequest, type ServerProcess } from "@httpqueue/testkit";
import { createDatabase } from "../src/db/client.js";
import { storeEvents } from "../src/db/events.js";
import { databaseAndReceivers, spawnServer, startTestServer } from "./helpers/server.js";

// The delivery engine: a webhook's due deliveries attempted together, up to
// its in-flight cap, each outcome recorded on its own; crash and two-server
// semantics.

/** Which event a request carries (its payload is {"n": …}). */
const numberOf = (r: ReceivedRequest) => (JSON.parse(r.body) as { n: number }).n;

/** Status of every delivery of a webhook, by its event's n. */
async function statuses(client: HttpQueueClient, webhookId: string) {
  const out = new Map<number, { status: DeliveryStatus; attempts: number }>();
  for await (const d of client.listDeliveriesAsync({ webhookId })) {
    const { event } = await client.getWebhookStatus({ eventId: d.eventId, pageSize: 1 });
    out.set((JSON.parse(event?.payload ?? "{}") as { n: number }).n, { status: d.status, attempts: d.attemptCount });
  }
  return out;
}

async function allSucceeded(client: HttpQueueClient, webhookId: string, count: number, timeoutMs = 30_000) {
  await eventually(
    async () => {
      const { counts } = await client.getWebhookStatus({ webhookId, pageSize: 1 });
      const done = counts.find((c) => c.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED)?.count ?? 0;
      return done === count ? true : undefined;
    },
    timeoutMs,
    `${count} deliveries succeeded`,
  );
}

/**
 * Stores `count` events of namespace "engine" with their deliveries and jobs,
 * `perStatement` to a statement, in one transaction: all due at its commit.
 */
async function storeBacklog(url: string, event: string, count: number, perStatement: number) {
  const db = createDatabase({ url, poolSize: 1 });
  try {
    await db.$client.begin(async (tx) => {
      for (let from = 0; from < count; from += perStatement) {
        await storeEvents(
          tx,
          Array.from({ length: Math.min(perStatement, count - from) }, (_, i) => ({
            namespace: "engine",
            event,
            payload: JSON.stringify({ n: from + i }),
            ttlSeconds: 3600,
            metadata: {},
            idempotencyKey: null,
            orderingKey: "",
            maxAttempts: 5,
          })),
        );
      }
    });
  } finally {
    await db.$client.end();
  }
}

describe("delivery engine", () => {
  const fixture = databaseAndReceivers();

  it("records each outcome of a batch with mixed outcomes, and retries only the failed ones", async () => {
    // By event: 0–3 succeed; 4 answers 500, 5 times out, 6 has its connection reset, 7 answers 503; each failure once.
    const failedOnce = new Set<number>();
    const receiver = await fixture.receiver((req, _i, res) => {
      const n = numberOf(req);
      if (n < 4 || failedOnce.has(n)) return 200;
      failedOnce.add(n);
      if (n === 4) return 500;
      if (n === 5) return { status: 200, delayMs: 3_000 };
      if (n === 6) {
        res.socket?.destroy();
        return "hang";
      }
      return 503;
    });
    const server = await startTestServer({ RETRY_SCHEDULE: "200ms" }, fixture.db);
    try {
      const { webhookId } = await server.client.registerWebhook({
        namespace: "engine",
        event: "mixed",
        url: receiver.url,
        timeout: 1,
      });
      // One statement stores them all, so that they are due together: one batch.
      await storeBacklog(fixture.db.url, "mixed", 8, 8);
      await allSucceeded(server.client, webhookId, 8);

      const byEvent = await statuses(server.client, webhookId);
      for (let n = 0; n < 8; n++) {
        assert.equal(byEvent.get(n)?.attempts, n < 4 ? 1 : 2, `event ${n}: attempts`);
      }
      const sent = receiver.requests.map(numberOf);
      for (let n = 0; n < 4; n++) assert.equal(sent.filter((m) => m === n).length, 1, `event ${n} sent once`);

      const attempts = await fixture.db.sql<
        { n: number; attempt_number: number; response_code: number | null; error_message: string | null }[]
      >`
        select (e.payload::json->>'n')::int as n, a.attempt_number, a.response_code, a.error_message
        from delivery_attempts a
        join webhook_deliveries d on d.id = a.delivery_id
        join event_records e on e.id = d.event_id
        where d.webhook_id = ${webhookId} and a.attempt_number = 1 and (e.payload::json->>'n')::int >= 4
        order by n`;
      assert.deepEqual(
        attempts.map((a) => [a.n, a.response_code]),
        [
          [4, 500],
          [5, null],
          [6, null],
          [7, 503],
        ],
      );
      assert.equal(attempts[0]?.error_message, "receiver answered HTTP 500");
      assert.equal(attempts[1]?.error_message, "timed out after 1s");
      assert.match(attempts[2]?.error_message ?? "", /socket|closed|reset|ECONNRESET/i);
    } finally {
      await server.stop();
    }
  });

  it("holds a hanging receiver to its in-flight cap while another webhook's deliveries flow", async () => {
    const held: ServerResponse[] = [];
    const hanging = await fixture.receiver((_req, _i, res) => {
      held.push(res);
      return "hang";
    });
    const healthy = await fixture.receiver();
    const server = await startTestServer({ WEBHOOK_MAX_IN_FLIGHT: "4", WORKER_CONCURRENCY: "4" }, fixture.db);
    try {
      const slow = await server.client.registerWebhook({ namespace: "engine", event: "slow", url: hanging.url });
      await server.client.registerWebhook({ namespace: "engine", event: "quick", url: healthy.url });
      for (let n = 0; n < 30; n++) {
        await server.client.pushEvent({ namespace: "engine", event: "slow", payload: JSON.stringify({ n }) });
      }
      await hanging.waitForRequests(4);
      for (let n = 0; n < 40; n++) {
        await server.client.pushEvent({ namespace: "engine", event: "quick", payload: JSON.stringify({ n }) });
      }
      // The healthy webhook's deliveries all arrive while the other one hangs, with a slot of its own.
      await healthy.waitForRequests(40, 10_000);
      assert.equal(hanging.requests.length, 4, "never more than the cap in flight to the hanging receiver");

      for (const res of held.splice(0)) res.writeHead(200).end();
      // Released, the rest goes out, still at most four at a time.
      await until(() => {
        for (const res of held.splice(0)) res.writeHead(200).end();
        return hanging.requests.length >= 30;
      }, 15_000);
      await allSucceeded(server.client, slow.webhookId, 30);
      assert.equal(new Set(hanging.requests.map(numberOf)).size, 30, "each delivered once");
    } finally {
      for (const res of held) res.destroy();
      await server.stop();
    }
  });

  it("after SIGKILL in the middle of a batch and a restart, every delivery ends SUCCEEDED", async () => {
    const receiver = await fixture.receiver(() => ({ status: 200, delayMs: 20 }));
    const start = async (): Promise<{ proc: ServerProcess; client: HttpQueueClient }> => {
      const proc = await spawnServer({ DATABASE_URL: fixture.db.url, WEBHOOK_MAX_IN_FLIGHT: "8" });
      return { proc, client: createClient({ address: proc.address }) };
    };
    let { proc, client } = await start();
    const { webhookId } = await client.registerWebhook({ namespace: "engine", event: "killed", url: receiver.url });
    // All 200 committed at once (pushed one by one, a fast run could deliver them all before the kill):
    // 8 at a time, 20 ms each, the kill after 40 comes with most still to go.
    await storeBacklog(fixture.db.url, "killed", 200, 200);
    await receiver.waitForRequests(40);
    client.close();
    proc.child.kill("SIGKILL");
    assert.equal(await proc.exited, "SIGKILL");
    const beforeRestart = receiver.requests.length;
    assert.ok(beforeRestart < 200, "killed in the middle");
    // What the dead server had recorded: none of these may be sent again.
    const recorded = new Set(
      (
        await fixture.db.sql<{ n: number }[]>`
          select (e.payload::json->>'n')::int as n from webhook_deliveries d join event_records e on e.id = d.event_id
          where d.webhook_id = ${webhookId} and d.attempt_count > 0`
      ).map((r) => r.n),
    );

    ({ proc, client } = await start());
    try {
      await allSucceeded(client, webhookId, 200);
      const sent = receiver.requests.map(numberOf);
      assert.equal(new Set(sent).size, 200, "every event delivered");
      // Sent again only what was attempted and not recorded when it was killed: at least once, nothing more.
      const twice = sent.filter((n, i) => sent.indexOf(n) !== i);
      assert.deepEqual(
        twice.filter((n) => recorded.has(n)),
        [],
        "no delivery recorded before the kill was sent again",
      );
      assert.ok(twice.length < beforeRestart, `${twice.length} sent twice, of ${beforeRestart} sent before the kill`);
    } finally {
      client.close();
      proc.child.kill("SIGKILL");
      await proc.exited;
    }
  });

  it("two servers on one database drain one backlog, every delivery made once", async () => {
    const receiver = await fixture.receiver(() => ({ status: 200, delayMs: 2 }));
    const a = await startTestServer({}, fixture.db);
    const webhooks = [];
    for (let w = 0; w < 3; w++) {
      webhooks.push(await a.client.registerWebhook({ namespace: "engine", event: "two", url: `${receiver.url}/${w}` }));
    }
    await a.stop();
    // The backlog is stored while no server runs; both then start on it.
    await storeBacklog(fixture.db.url, "two", 600, 300);
    const [one, two] = await Promise.all([startTestServer({}, fixture.db), startTestServer({}, fixture.db)]);
    try {
      for (const { webhookId } of webhooks) await allSucceeded(one.client, webhookId, 600);
      const seen = receiver.requests.map((r) => `${r.path}:${r.headers["webhook-id"] as string}`);
      assert.equal(seen.length, 1800, "1,800 requests for 1,800 deliveries");
      assert.equal(new Set(seen).size, 1800, "none twice");
    } finally {
      await Promise.all([one.stop(), two.stop()]);
    }
  });
});
