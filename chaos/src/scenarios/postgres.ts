// PostgreSQL (one of the scenario's own, never the shared one) stopped in
// the middle of the load and started again: the server rides through.
import { Ordering } from "@httpqueue/sdk";
import {
  busiestSecond,
  duplicates,
  firstReceiptAfter,
  lostEvents,
  outOfOrder,
  shortestSpan,
  storedTwice,
} from "../analysis.js";
import { sleep, waitFor } from "../clock.js";
import { createCluster } from "../cluster.js";
import { connect, launch, serverSlot, settleDeliveries, type Scenario } from "../context.js";
import { attemptStarts, openDatabase } from "../databases.js";
import { startPushing } from "../load.js";
import { startRecorder } from "../receiver.js";
import { count, histogram, millis, seconds, errorSummary } from "../report.js";

const NAMESPACE = "chaos-postgres";

export const postgresScenario: Scenario = {
  name: "postgres",
  title: "restart PostgreSQL in the middle of the load",
  budgetMs: { full: 600_000, smoke: 150_000 },
  async run(ctx) {
    const events = ctx.size ?? (ctx.smoke ? 150 : 2_000);
    const rate = ctx.smoke ? 50 : 100;
    const outageMs = ctx.smoke ? 2_000 : 5_000;
    // Pushes outpace it: deliveries run at the limit when PostgreSQL goes away.
    const rateLimit = 50;

    ctx.say("creating a PostgreSQL of the scenario's own (initdb)");
    const cluster = await createCluster();
    ctx.resources.add(`PostgreSQL on port ${cluster.port}`, () => cluster.remove());
    await cluster.start();
    const recorder = await startRecorder();
    ctx.resources.add("receiver", () => recorder.close());
    const slot = await serverSlot("a", cluster.url("postgres"), { HEALTH_CHECK_INTERVAL: "500ms" });
    const server = await launch(ctx, slot);
    const client = connect(ctx, server.address);
    const { webhookId } = await client.registerWebhook({
      namespace: NAMESPACE,
      event: "e",
      url: `${recorder.url}/ordered`,
      ordering: Ordering.ORDERING_BY_KEY,
      rateLimitPerSecond: rateLimit,
      retryPolicy: { scheduleSeconds: [1], maxAttempts: 50 },
    });

    const pushDeadline = ctx.deadlineAt - 60_000;
    ctx.say(`pushing ${count(events)} events at ${rate}/s, 20 ordering keys`);
    const load = startPushing({
      clients: [client],
      total: events,
      rate,
      keys: 20,
      orderingKeys: true,
      namespace: NAMESPACE,
      event: () => "e",
      deadlineAt: pushDeadline,
    });
    const threshold = Math.floor(events * 0.4);
    await waitFor(`${threshold} pushes acknowledged`, pushDeadline, () =>
      load.acknowledged.size >= threshold ? true : undefined,
    );
    const failuresBefore = [...load.failures.values()].reduce((a, b) => a + b, 0);
    ctx.say(`stopping PostgreSQL (${load.acknowledged.size} acknowledged)`);
    const stopAt = Date.now();
    await cluster.stop();
    const stoppedAt = Date.now();
    const notReady = waitFor("/readyz to answer 503", stoppedAt + outageMs + 30_000, async () =>
      (await server.readyz()) === 503 ? Date.now() : undefined,
    );
    await sleep(outageMs);
    ctx.say("starting PostgreSQL again");
    await cluster.start();
    const startedAt = Date.now();
    const notReadyAt = await notReady.catch(() => undefined);
    const readyAgainAt = await waitFor("/readyz to answer 200 again", pushDeadline, async () =>
      (await server.readyz()) === 200 ? Date.now() : undefined,
    );
    const { acknowledged, broken } = await settleDeliveries(ctx, { load, recorder, client, webhookIds: [webhookId] });

    const alive = server.exitStatus() === undefined;
    const codes = [...load.failures.keys()];
    const lost = lostEvents(acknowledged, recorder.receipts);
    const twice = storedTwice(recorder.receipts);
    const dup = duplicates(recorder.receipts);
    const disorder = outOfOrder(recorder.receipts);
    const busiest = busiestSecond(recorder.receipts.map((r) => r.at));
    const sql = openDatabase(cluster.url("postgres"));
    ctx.resources.add("database client", () => sql.end({ timeout: 5 }));
    const starts = await attemptStarts(sql, webhookId);
    const span = shortestSpan(starts, rateLimit + 1);
    const failedDuringOutage = load.failureLog.filter((f) => f.at >= stopAt && f.at <= readyAgainAt).length;
    if (!alive) broken.push(`the server exited (${String(server.exitStatus())}) during the outage`);
    const unexpected = codes.filter((code) => code !== "UNAVAILABLE");
    if (unexpected.length > 0) broken.push(`pushes failed with codes other than UNAVAILABLE: ${unexpected.join(", ")}`);
    if (load.abandoned.length > 0)
      broken.push(`${load.abandoned.length} pushes never acknowledged before the deadline`);
    if (lost.length > 0) broken.push(`acknowledged events lost: ${lost.length} (seq ${lost.slice(0, 10).join(", ")}…)`);
    if (twice > 0) broken.push(`events stored twice despite their idempotency key: ${twice}`);
    if (disorder > 0) broken.push(`events delivered out of order within their ordering key: ${disorder}`);

    const figures: [string, string][] = [
      ["events pushed (20 ordering keys; failed pushes retried)", count(events)],
      ["acknowledged", count(acknowledged.length)],
      [
        "PostgreSQL down (fast shutdown → started again)",
        `${seconds(startedAt - stopAt)} (stop took ${seconds(stoppedAt - stopAt)})`,
      ],
      ["server process", alive ? `pid ${server.pid}, running throughout` : `exited: ${String(server.exitStatus())}`],
      [
        "push attempts failed, by code",
        `${histogram(load.failures)} (${count(failedDuringOutage)} during the outage, ${count(failuresBefore)} before it)`,
      ],
      ["/readyz 503 after the stop", seconds(notReadyAt === undefined ? undefined : notReadyAt - stoppedAt)],
      ["/readyz 200 again after the start", seconds(readyAgainAt - startedAt)],
      ["deliveries resumed after the start", seconds(firstReceiptAfter(recorder.receipts, startedAt))],
      ["acknowledged events lost", count(lost.length)],
      ["events stored twice", count(twice)],
      [
        "deliveries received more than once (2xx twice)",
        `${count(dup.deliveries)} (${count(dup.extraRequests)} extra requests)`,
      ],
      ["delivered out of order within a key", count(disorder)],
      [
        `rate limit ${rateLimit}/s (not promised across a restart): busiest second received`,
        `${count(busiest)} requests; shortest span of ${rateLimit + 1} recorded starts ${millis(span)}`,
      ],
      ["errors the server logged", errorSummary(server.errorLines())],
    ];
    return { figures, broken };
  },
};
