// A receiver that fails: 30 % HTTP 500, 10 % no answer past the webhook's
// timeout, 5 % connection reset. Retries must still get every event through
// within its time to live, and the API must say so.
import { DeliveryStatus, type Delivery } from "@httpqueue/sdk";
import { duplicates, quantile } from "../analysis.js";
import { DeadlineError, waitFor } from "../clock.js";
import { connect, deliveryCounts, freshDatabase, launch, serverSlot, type Scenario } from "../context.js";
import { startPushing } from "../load.js";
import { createRandom } from "../random.js";
import { startRecorder, type Answer } from "../receiver.js";
import { count, histogram, millis, seconds, errorSummary } from "../report.js";

const NAMESPACE = "chaos-receiver";
const TIMEOUT_SECONDS = 1;
const TTL_SECONDS = 180;

/** 30 % 500, 10 % hang, 5 % reset, the rest 200. */
export function chaoticAnswer(r: number): Answer {
  if (r < 0.3) return 500;
  if (r < 0.4) return "hang";
  if (r < 0.45) return "reset";
  return 200;
}

export const receiverScenario: Scenario = {
  name: "receiver",
  title: "a receiver answering 500, hanging and resetting",
  budgetMs: { full: 600_000, smoke: 150_000 },
  async run(ctx) {
    const events = ctx.size ?? (ctx.smoke ? 40 : 1_000);
    const rate = ctx.smoke ? 40 : 200;
    const random = createRandom(ctx.seed);
    // A hanging request is cut well after the webhook's timeout: the server gives up first.
    const recorder = await startRecorder(() => chaoticAnswer(random.next()), (TIMEOUT_SECONDS + 4) * 1000);
    ctx.resources.add("receiver", () => recorder.close());
    const server = await launch(ctx, await serverSlot("a", await freshDatabase(ctx)));
    const client = connect(ctx, server.address);
    const { webhookId } = await client.registerWebhook({
      namespace: NAMESPACE,
      event: "e",
      url: `${recorder.url}/chaos`,
      timeout: TIMEOUT_SECONDS,
      retryPolicy: { scheduleSeconds: [1], maxAttempts: 50 },
    });

    ctx.say(
      `pushing ${count(events)} events at ${rate}/s (TTL ${TTL_SECONDS} s, webhook timeout ${TIMEOUT_SECONDS} s)`,
    );
    const load = startPushing({
      clients: [client],
      total: events,
      rate,
      keys: 10,
      namespace: NAMESPACE,
      event: () => "e",
      ttlSeconds: TTL_SECONDS,
      deadlineAt: ctx.deadlineAt - 60_000,
    });
    await load.finished;
    const pushedAt = Date.now();
    const broken: string[] = [];
    if (load.abandoned.length > 0)
      broken.push(`${load.abandoned.length} pushes never acknowledged before the deadline`);
    if (load.failures.size > 0) broken.push(`pushes failed with a healthy database: ${histogram(load.failures)}`);

    // Every delivery ends, one way or another, within the TTL; a little longer for the last status to be written.
    let finalCounts = new Map<string, number>();
    try {
      await waitFor(
        "every delivery to end",
        Math.min(ctx.deadlineAt - 20_000, pushedAt + (TTL_SECONDS + 30) * 1000),
        async () => {
          finalCounts = await deliveryCounts(client, webhookId);
          const open = (finalCounts.get("PENDING") ?? 0) + (finalCounts.get("RETRYING") ?? 0);
          return open === 0 && sum(finalCounts) >= load.acknowledged.size ? true : undefined;
        },
        500,
      );
    } catch (err) {
      if (!(err instanceof DeadlineError)) throw err;
      broken.push(`${err.message}: ${histogram(finalCounts)}`);
    }
    const allEndedAt = Date.now();

    const deliveries: Delivery[] = [];
    for await (const delivery of client.listDeliveriesAsync({ webhookId, pageSize: 1000 })) deliveries.push(delivery);
    const succeeded = deliveries.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    const took = succeeded.map((d) => (d.completedAt?.getTime() ?? Infinity) - (d.createdAt?.getTime() ?? 0));
    const late = took.filter((ms) => ms > TTL_SECONDS * 1000).length;
    const answeredOk = new Set(recorder.receipts.filter((r) => r.answer === 200).map((r) => r.id));
    const unfounded = succeeded.filter((d) => !answeredOk.has(d.id)).length;
    const attempts = deliveries.map((d) => d.attemptCount);
    const answers = new Map<string, number>();
    for (const r of recorder.receipts) {
      const name = r.answer === "hang" ? "no answer" : r.answer === "reset" ? "reset" : String(r.answer);
      answers.set(name, (answers.get(name) ?? 0) + 1);
    }
    const dup = duplicates(recorder.receipts);

    if (deliveries.length !== load.acknowledged.size) {
      broken.push(`${deliveries.length} deliveries for ${load.acknowledged.size} acknowledged events`);
    }
    if (succeeded.length !== deliveries.length) {
      broken.push(`${deliveries.length - succeeded.length} deliveries did not succeed: ${histogram(finalCounts)}`);
    }
    if (late > 0) broken.push(`${late} deliveries succeeded after their event's TTL`);
    if (unfounded > 0) broken.push(`${unfounded} deliveries SUCCEEDED without a 200 from the receiver`);

    const figures: [string, string][] = [
      ["events pushed (TTL 180 s; webhook timeout 1 s, retry every 1 s)", count(events)],
      ["requests received, by the receiver's answer", `${count(recorder.receipts.length)}: ${histogram(answers)}`],
      ["deliveries by status (GetWebhookStatus)", histogram(finalCounts)],
      ["SUCCEEDED within the TTL", `${count(succeeded.length - late)} of ${count(deliveries.length)}`],
      [
        "attempts per delivery: mean / max",
        `${(attempts.reduce((a, b) => a + b, 0) / Math.max(1, attempts.length)).toFixed(2)} / ${Math.max(0, ...attempts)}`,
      ],
      [
        "push → SUCCEEDED: p50 / p99 / max",
        `${millis(quantile(took, 0.5))} / ${millis(quantile(took, 0.99))} / ${millis(Math.max(0, ...took))}`,
      ],
      ["every delivery ended, after the last push", seconds(allEndedAt - pushedAt)],
      ["SUCCEEDED without a 200 received", count(unfounded)],
      ["deliveries answered 200 more than once", count(dup.deliveries)],
      ["errors the server logged", errorSummary(server.errorLines())],
    ];
    return { figures, broken };
  },
};

function sum(counts: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return total;
}
