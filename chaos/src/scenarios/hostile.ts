// Hostile requests over every RPC: random, huge, unicode and control
// characters, wrong types, invalid ids, deep nesting, oversize, random bytes.
// No crash, no INTERNAL or UNKNOWN, and a normal delivery works afterwards.
import { DeliveryStatus } from "@httpqueue/sdk";
import { waitFor } from "../clock.js";
import { connect, freshDatabase, launch, serverSlot, type Scenario } from "../context.js";
import { hostileRequest, rpcTargets, type Known, type Kind } from "../hostile/requests.js";
import { rawClient, send } from "../hostile/send.js";
import { createRandom } from "../random.js";
import { startRecorder } from "../receiver.js";
import { count, histogram, errorSummary } from "../report.js";

const FORBIDDEN = new Set(["INTERNAL", "UNKNOWN"]);
const CONCURRENCY = 16;

export const hostileScenario: Scenario = {
  name: "hostile",
  title: "hostile requests over every RPC",
  budgetMs: { full: 600_000, smoke: 150_000 },
  async run(ctx) {
    const total = ctx.size ?? (ctx.smoke ? 600 : 10_000);
    const random = createRandom(ctx.seed);
    const targets = rpcTargets();
    const recorder = await startRecorder();
    ctx.resources.add("receiver", () => recorder.close());
    const server = await launch(ctx, await serverSlot("a", await freshDatabase(ctx)));
    const client = connect(ctx, server.address);
    const raw = rawClient(server.address);
    ctx.resources.add("raw gRPC client", () => {
      raw.close();
    });
    const rssBefore = rss(await server.metrics());

    // Objects that exist, so that some requests get past "not found" into the handlers.
    const { webhookId } = await client.registerWebhook({
      namespace: "chaos-hostile",
      event: "e",
      url: `${recorder.url}/setup`,
    });
    const known: Known = { webhookIds: [webhookId], eventIds: [], deliveryIds: [] };
    for (let i = 0; i < 3; i++) {
      const { eventId } = await client.pushEvent({ namespace: "chaos-hostile", event: "e", payload: { seq: -1 } });
      known.eventIds.push(eventId);
    }
    await waitFor("the setup deliveries", ctx.deadlineAt, async () => {
      const { deliveries } = await client.getWebhookStatus({ webhookId, pageSize: 10 });
      return deliveries.length >= 3 ? deliveries : undefined;
    }).then((deliveries) => known.deliveryIds.push(...deliveries.map((d) => d.id)));

    ctx.say(`sending ${count(total)} hostile requests over ${targets.length} RPCs (${CONCURRENCY} at a time)`);
    const byCode = new Map<string, number>();
    const byRpc = new Map<string, Map<string, number>>();
    const byKind = new Map<Kind, number>();
    const examples: string[] = [];
    let next = 0;
    let bytesSent = 0;
    const started = Date.now();
    const sender = async () => {
      while (next < total && Date.now() < ctx.deadlineAt - 60_000 && server.exitStatus() === undefined) {
        const index = next++;
        const target = random.pick(targets);
        const { kind, bytes } = hostileRequest(target, random, known);
        bytesSent += bytes.length;
        byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
        const outcome = await send(raw, target, bytes, 20_000);
        byCode.set(outcome.code, (byCode.get(outcome.code) ?? 0) + 1);
        const codes = byRpc.get(target.name) ?? new Map<string, number>();
        codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1);
        byRpc.set(target.name, codes);
        if ((FORBIDDEN.has(outcome.code) || outcome.code === "DEADLINE_EXCEEDED") && examples.length < 10) {
          examples.push(
            `#${index} ${target.name} (${kind}, ${bytes.length} bytes, starting ${bytes.subarray(0, 24).toString("hex")}): ${outcome.code} "${outcome.details}"`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, sender));
    const sent = [...byCode.values()].reduce((a, b) => a + b, 0);
    const seconds = (Date.now() - started) / 1000;

    // Afterwards: the same process, ready, and a normal delivery goes through.
    const broken: string[] = [];
    const alive = server.exitStatus() === undefined;
    let delivered = "not tried: the server is gone";
    if (alive) {
      const ready = await server.readyz();
      if (ready !== 200) broken.push(`/readyz answers ${ready} after the hostile requests`);
      const after = await client.registerWebhook({
        namespace: "chaos-after",
        event: "e",
        url: `${recorder.url}/after`,
      });
      const { eventId } = await client.pushEvent({ namespace: "chaos-after", event: "e", payload: { seq: 1 } });
      const startedAt = Date.now();
      try {
        await waitFor(
          "a normal delivery after the hostile requests",
          Math.min(ctx.deadlineAt, Date.now() + 60_000),
          async () => {
            const { deliveries } = await client.getWebhookStatus({ eventId });
            const got = recorder.receipts.some((r) => r.path === "/after" && r.seq === 1);
            return got && deliveries[0]?.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED ? true : undefined;
          },
        );
        delivered = `SUCCEEDED, received ${((Date.now() - startedAt) / 1000).toFixed(2)} s after the push (webhook ${after.webhookId.slice(0, 8)}…)`;
      } catch (err) {
        delivered = "FAILED";
        broken.push(err instanceof Error ? err.message : String(err));
      }
    }
    const rssAfter = alive ? rss(await server.metrics()) : Number.NaN;

    const forbidden = [...byCode].filter(([code]) => FORBIDDEN.has(code));
    if (!alive) broken.push(`the server exited (${String(server.exitStatus())}) during the hostile requests`);
    if (sent < total) broken.push(`only ${sent} of ${total} requests were sent before the deadline`);
    for (const [code, n] of forbidden) broken.push(`${n} requests answered ${code}`);
    const hung = byCode.get("DEADLINE_EXCEEDED") ?? 0;
    if (hung > 0) broken.push(`${hung} requests got no answer within 20 s (DEADLINE_EXCEEDED)`);
    if (forbidden.length > 0 || hung > 0) broken.push(...examples.map((e) => `  ${e}`));

    const figures: [string, string][] = [
      ["requests sent (seed for a repeat)", `${count(sent)} in ${seconds.toFixed(1)} s (seed ${ctx.seed})`],
      ["bytes sent", `${(bytesSent / 1024 / 1024).toFixed(1)} MiB`],
      ["RPCs (from the generated service definition)", `${targets.length}: ${targets.map((t) => t.name).join(", ")}`],
      ["requests by kind", histogram(byKind)],
      ["status codes", histogram(byCode)],
    ];
    for (const target of targets) figures.push([`  ${target.name}`, histogram(byRpc.get(target.name) ?? new Map())]);
    figures.push(
      ["server process", alive ? `pid ${server.pid}, running throughout` : `exited: ${String(server.exitStatus())}`],
      ["server memory (RSS) before / after", `${mib(rssBefore)} / ${mib(rssAfter)}`],
      ["errors the server logged (unexpected failures)", errorSummary(server.errorLines())],
      ["a normal delivery afterwards", delivered],
    );
    return { figures, broken };
  },
};

function rss(metrics: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith("process_resident_memory_bytes "));
  return line ? Number(line.split(" ")[1]) : Number.NaN;
}

const mib = (bytes: number) => (Number.isNaN(bytes) ? "–" : `${(bytes / 1024 / 1024).toFixed(0)} MiB`);
