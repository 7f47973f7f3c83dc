// SIGKILL the server while events are pushed and delivered, restart it on
// the same ports, and again: nothing acknowledged may be lost.
import { duplicates, firstReceiptAfter, lostEvents, storedTwice } from "../analysis.js";
import { waitFor } from "../clock.js";
import { connect, freshDatabase, launch, serverSlot, settleDeliveries, type Scenario } from "../context.js";
import { startPushing } from "../load.js";
import { startRecorder } from "../receiver.js";
import { count, histogram, seconds, errorSummary } from "../report.js";

const NAMESPACE = "chaos-kill";

export const killScenario: Scenario = {
  name: "kill",
  title: "SIGKILL the server while pushing and delivering",
  budgetMs: { full: 600_000, smoke: 150_000 },
  async run(ctx) {
    const events = ctx.size ?? (ctx.smoke ? 100 : 3_000);
    const kills = ctx.smoke ? 1 : 2;
    const rate = ctx.smoke ? 50 : 300;
    const recorder = await startRecorder();
    ctx.resources.add("receiver", () => recorder.close());
    const slot = await serverSlot("a", await freshDatabase(ctx));
    let server = await launch(ctx, slot);
    const client = connect(ctx, server.address);
    const { webhookId } = await client.registerWebhook({
      namespace: NAMESPACE,
      event: "e",
      url: `${recorder.url}/kill`,
    });

    // Leaves a minute of the budget for the deliveries and the report.
    const pushDeadline = ctx.deadlineAt - 60_000;
    ctx.say(`pushing ${count(events)} events at ${rate}/s; ${kills} kills`);
    const load = startPushing({
      clients: [client],
      total: events,
      rate,
      keys: 16,
      namespace: NAMESPACE,
      event: () => "e",
      deadlineAt: pushDeadline,
    });
    const restarts: { killedAt: number; restartedAt: number; readyAt: number }[] = [];
    const errorLines: string[] = [];
    for (let k = 1; k <= kills; k++) {
      const threshold = Math.floor((events * k) / (kills + 1));
      await waitFor(`${threshold} pushes acknowledged`, pushDeadline, () =>
        load.acknowledged.size >= threshold ? true : undefined,
      );
      errorLines.push(...server.errorLines());
      const killedAt = await server.kill();
      ctx.say(`killed the server (${load.acknowledged.size} acknowledged); restarting it`);
      const restartedAt = Date.now();
      server = await launch(ctx, slot);
      restarts.push({ killedAt, restartedAt, readyAt: Date.now() });
    }
    const { acknowledged, broken } = await settleDeliveries(ctx, { load, recorder, client, webhookIds: [webhookId] });
    errorLines.push(...server.errorLines());
    const lastAck = Math.max(...load.acknowledged.values());
    const lastFirstDelivery = lastDeliveryOf(recorder.receipts);

    const lost = lostEvents(acknowledged, recorder.receipts);
    const twice = storedTwice(recorder.receipts);
    const dup = duplicates(
      recorder.receipts,
      restarts.map((r) => r.killedAt),
    );
    if (load.abandoned.length > 0)
      broken.push(`${load.abandoned.length} pushes never acknowledged before the deadline`);
    if (lost.length > 0) broken.push(`acknowledged events lost: ${lost.length} (seq ${lost.slice(0, 10).join(", ")}…)`);
    if (twice > 0) broken.push(`events stored twice despite their idempotency key: ${twice}`);
    if (dup.unexplained > 0) {
      broken.push(`deliveries received twice with no kill between: ${dup.unexplained}`);
      for (const { id, times } of dup.unexplainedExamples) {
        broken.push(`  delivery ${id}: answered 2xx at ${times.map((t) => new Date(t).toISOString()).join(", ")}`);
      }
    }

    const figures: [string, string][] = [
      ["events pushed (idempotency keys; failed pushes retried)", count(events)],
      ["acknowledged", count(acknowledged.length)],
      ["push attempts failed, by code (each retried)", histogram(load.failures)],
      ["acknowledged as duplicate (stored, answer lost)", count(load.answeredDuplicate())],
      ["acknowledged events lost", count(lost.length)],
      ["events stored twice", count(twice)],
      [
        "deliveries received more than once (2xx twice)",
        `${count(dup.deliveries)} (${count(dup.extraRequests)} extra requests; ${dup.unexplained} not after a kill)`,
      ],
      ["requests received", count(recorder.receipts.length)],
    ];
    restarts.forEach((r, i) => {
      figures.push([
        `kill ${i + 1}: restart → ready / → first delivery`,
        `${seconds(r.readyAt - r.restartedAt)} / ${seconds(firstReceiptAfter(recorder.receipts, r.restartedAt))}`,
      ]);
    });
    figures.push(["last event delivered after the last acknowledgement", seconds(lastFirstDelivery - lastAck)]);
    figures.push(["errors the server logged", errorSummary(errorLines)]);
    return { figures, broken };
  },
};

/** When the last delivery to arrive for the first time arrived. */
function lastDeliveryOf(receipts: readonly { id: string; at: number }[]): number {
  const first = new Map<string, number>();
  for (const r of receipts) if (!first.has(r.id)) first.set(r.id, r.at);
  return Math.max(...first.values());
}
