// Two servers on one database, pushes going to both, one of them SIGKILLed
// and restarted: nothing lost, nothing twice but what the kill explains,
// ordering and rate limits kept, and both servers deliver.
import { Ordering, type HttpQueueClient } from "@httpqueue/sdk";
import { busiestWindow, duplicates, lostEvents, outOfOrder, shortestSpan, storedTwice } from "../analysis.js";
import { sleep, waitFor } from "../clock.js";
import { connect, freshDatabase, launch, serverSlot, settleDeliveries, type Scenario } from "../context.js";
import { attemptStarts, openDatabase } from "../databases.js";
import { startPushing } from "../load.js";
import { startRecorder } from "../receiver.js";
import { count, histogram, millis, seconds, errorSummary } from "../report.js";
import { attemptsIn } from "../servers.js";

const NAMESPACE = "chaos-two";
const RATE_LIMIT = 50;
/**
 * An attempt's recorded start trails the moment the rate limiter let it go by
 * a few milliseconds (signing, the event loop): spans of the recorded starts
 * are allowed this much under a second.
 */
const START_JITTER_MS = 10;

export const twoServersScenario: Scenario = {
  name: "two-servers",
  title: "two servers on one database, one killed and restarted",
  budgetMs: { full: 600_000, smoke: 150_000 },
  async run(ctx) {
    const events = ctx.size ?? (ctx.smoke ? 200 : 3_000);
    const webhooks = ctx.smoke ? 4 : 6;
    const rate = ctx.smoke ? 80 : 250;
    // Every 7th request answered 500: retries (one attempt of an ordered key at a time) hold back their key.
    const recorder = await startRecorder((index) => (index % 7 === 6 ? 500 : 200));
    ctx.resources.add("receiver", () => recorder.close());
    const databaseUrl = await freshDatabase(ctx);
    const slotA = await serverSlot("a", databaseUrl);
    const slotB = await serverSlot("b", databaseUrl);
    let a = await launch(ctx, slotA);
    const b = await launch(ctx, slotB);
    const clients = [connect(ctx, a.address), connect(ctx, b.address)];
    const [clientA] = clients as [HttpQueueClient, HttpQueueClient];
    const webhookIds: string[] = [];
    for (let w = 0; w < webhooks; w++) {
      const { webhookId } = await clientA.registerWebhook({
        namespace: NAMESPACE,
        event: `e${w}`,
        url: `${recorder.url}/w${w}`,
        ordering: Ordering.ORDERING_BY_KEY,
        rateLimitPerSecond: RATE_LIMIT,
        retryPolicy: { scheduleSeconds: [1], maxAttempts: 50 },
      });
      webhookIds.push(webhookId);
    }

    const pushDeadline = ctx.deadlineAt - 60_000;
    ctx.say(`pushing ${count(events)} events at ${rate}/s through both servers, to ${webhooks} webhooks`);
    const load = startPushing({
      clients,
      total: events,
      rate,
      keys: 20,
      orderingKeys: true,
      namespace: NAMESPACE,
      event: (seq) => `e${seq % webhooks}`,
      deadlineAt: pushDeadline,
    });
    const threshold = Math.floor(events / 2);
    await waitFor(`${threshold} pushes acknowledged`, pushDeadline, () =>
      load.acknowledged.size >= threshold ? true : undefined,
    );
    // Read just before the kill: a SIGKILLed server's counters die with it.
    const attemptsA1 = attemptsIn(await a.metrics());
    const errors = [...a.errorLines()];
    const killedAt = await a.kill();
    ctx.say(`killed server a (${attemptsA1} attempts made); b carries on alone for 2 s`);
    await sleep(2_000);
    const restartedAt = Date.now();
    a = await launch(ctx, slotA);
    const readyAt = Date.now();
    const { acknowledged, broken } = await settleDeliveries(ctx, { load, recorder, client: clientA, webhookIds });
    const attemptsA2 = attemptsIn(await a.metrics());
    const attemptsB = attemptsIn(await b.metrics());
    errors.push(...a.errorLines(), ...b.errorLines());
    let recorded = 0;
    for (const webhookId of webhookIds) {
      for await (const d of clientA.listDeliveriesAsync({ webhookId, pageSize: 1000 })) recorded += d.attemptCount;
    }

    const lost = lostEvents(acknowledged, recorder.receipts);
    const twice = storedTwice(recorder.receipts);
    const dup = duplicates(recorder.receipts, [killedAt]);
    const disorder = outOfOrder(recorder.receipts);
    // Measured twice: by the receiver's clock (which its own event loop delays), and by
    // the attempts' start times the servers recorded (their requests' real spacing).
    const received = busiest(
      webhookIds.map((_, w) => recorder.receipts.filter((r) => r.path === `/w${w}`).map((r) => r.at)),
    );
    const sql = openDatabase(databaseUrl);
    ctx.resources.add("database client", () => sql.end({ timeout: 5 }));
    const startTimes: number[][] = [];
    for (const id of webhookIds) startTimes.push(await attemptStarts(sql, id));
    const sent = busiest(startTimes);
    const span = Math.min(...startTimes.map((times) => shortestSpan(times, RATE_LIMIT + 1)));
    const receivedSpan = Math.min(
      ...webhookIds.map((_, w) =>
        shortestSpan(
          recorder.receipts.filter((r) => r.path === `/w${w}`).map((r) => r.at),
          RATE_LIMIT + 1,
        ),
      ),
    );
    if (load.abandoned.length > 0)
      broken.push(`${load.abandoned.length} pushes never acknowledged before the deadline`);
    if (lost.length > 0) broken.push(`acknowledged events lost: ${lost.length} (seq ${lost.slice(0, 10).join(", ")}…)`);
    if (twice > 0) broken.push(`events stored twice despite their idempotency key: ${twice}`);
    if (dup.unexplained > 0) {
      broken.push(`deliveries received twice with no kill between: ${dup.unexplained}`);
      for (const { id, times } of dup.unexplainedExamples) {
        const at = times.map((t) => `${((t - killedAt) / 1000).toFixed(2)} s`).join(", ");
        broken.push(
          `  delivery ${id}: answered 2xx at ${at} from the kill (a restarted at ${seconds(restartedAt - killedAt)})`,
        );
        // What the servers recorded of it, for a diagnosis.
        const attempts = await sql<{ n: number; at: number; code: number | null; error: string | null }[]>`
          select attempt_number as n, extract(epoch from started_at)::float8 * 1000 as at,
            response_code as code, error_message as error
          from delivery_attempts where delivery_id = ${id} order by attempt_number`;
        for (const x of attempts) {
          broken.push(
            `    attempt ${x.n} recorded: started ${seconds(x.at - killedAt)} from the kill, ${x.code ?? x.error ?? ""}`,
          );
        }
      }
    }
    if (disorder > 0) broken.push(`events delivered out of order within their ordering key: ${disorder}`);
    if (span < 1000 - START_JITTER_MS) {
      broken.push(
        `a webhook was sent ${RATE_LIMIT + 1} requests within ${span.toFixed(0)} ms (limit ${RATE_LIMIT}/s; attempts' start times)`,
      );
    }

    const made = attemptsA1 + attemptsA2 + attemptsB;
    const share = (n: number) => `${count(n)} (${((100 * n) / Math.max(1, made)).toFixed(0)} %)`;
    const figures: [string, string][] = [
      [`events pushed (alternating servers; ${webhooks} webhooks, 20 keys)`, count(events)],
      ["acknowledged", count(acknowledged.length)],
      ["push attempts failed, by code (retried on the other server)", histogram(load.failures)],
      ["attempts made by a, until killed (its /metrics)", share(attemptsA1)],
      ["attempts made by a, restarted", share(attemptsA2)],
      ["attempts made by b", share(attemptsB)],
      ["attempts recorded (GetWebhookStatus, all webhooks)", count(recorded)],
      ["requests received (every 7th answered 500)", count(recorder.receipts.length)],
      ["acknowledged events lost", count(lost.length)],
      ["events stored twice", count(twice)],
      [
        "deliveries received more than once (2xx twice)",
        `${count(dup.deliveries)} (${count(dup.extraRequests)} extra requests; ${dup.unexplained} not after the kill)`,
      ],
      ["delivered out of order within a key", count(disorder)],
      [
        `shortest span of ${RATE_LIMIT + 1} requests to a webhook: started / received`,
        `${millis(span)} / ${millis(receivedSpan)} (at least 1,000 ms: never more than ${RATE_LIMIT} in a second)`,
      ],
      [
        `busiest second of a webhook (rate limit ${RATE_LIMIT}/s): started / received`,
        `${count(sent.count)} / ${count(received.count)} requests (${seconds(sent.start - killedAt)} / ${seconds(received.start - killedAt)} from the kill)`,
      ],
      [
        "a: killed → restarted (b alone) / restart → ready",
        `${seconds(restartedAt - killedAt)} / ${seconds(readyAt - restartedAt)}`,
      ],
      ["errors the servers logged", errorSummary(errors)],
    ];
    return { figures, broken };
  },
};

/** The busiest second of any of the webhooks (each given its requests' times). */
function busiest(perWebhook: number[][]): { count: number; start: number } {
  let best = { count: 0, start: Number.NaN };
  for (const times of perWebhook) {
    const window = busiestWindow(times);
    if (window.count > best.count) best = window;
  }
  return best;
}
