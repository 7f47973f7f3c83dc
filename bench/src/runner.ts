// One benchmark: the baselines and httpqueue's scenarios, run after run
// (interleaved, so that a noisy minute spreads over every figure), then the
// medians, ratios and targets.
import { measureGraphile, measureInserts, measurePostLoop } from "./baselines.js";
import { now } from "./clock.js";
import type { BenchDatabase, DatabaseAdmin } from "./database.js";
import { summarise, targets, type RunValues } from "./figures.js";
import { payloadMaker } from "./load.js";
import { describeMachine } from "./machine.js";
import type { BenchOptions, Scenario } from "./options.js";
import { startBenchReceiver } from "./receiver.js";
import type { ResultsFile } from "./report.js";
import {
  backlog,
  endToEnd,
  ingestClosedLoop,
  ingestOpenLoop,
  steady,
  type ScenarioContext,
  type UnitCosts,
} from "./scenarios.js";
import { startService } from "./service.js";

export type Log = (line: string) => void;

/** Used for sizing when the baselines are not among the chosen scenarios. */
const DEFAULT_POST_RATE = 20_000;
const DEFAULT_GRAPHILE_RATE = 4000;

/** A migrated database (the server migrates it at its first start) for every scenario to copy. */
async function buildTemplate(admin: DatabaseAdmin, concurrency: number): Promise<BenchDatabase> {
  const db = await admin.create({ label: "template" });
  const service = await startService({ databaseUrl: db.url, logLevel: "warn", concurrency });
  await service.stop();
  return db;
}

function costs(prefix: string, c: UnitCosts, values: RunValues) {
  values[`${prefix}.commits`] = c.commits;
  values[`${prefix}.server_cpu_ms`] = c.serverCpuMs;
  values[`${prefix}.postgres_cpu_ms`] = c.postgresCpuMs;
}

export async function runBench(options: BenchOptions, admin: DatabaseAdmin, log: Log): Promise<ResultsFile> {
  const startedAt = new Date();
  const began = now();
  const has = (s: Scenario) => options.scenarios.includes(s);
  const receiver = await startBenchReceiver();
  let template: BenchDatabase | undefined;
  try {
    const machine = await describeMachine(admin);
    log(
      `${machine.cores} cores, Node ${machine.node}, PostgreSQL ${machine.postgres.server_version ?? "?"}; ` +
        `${options.runs} runs of ${options.scenarios.length} scenarios (${options.mode})`,
    );
    template = await buildTemplate(admin, options.concurrency);
    const payload = payloadMaker(options.payloadBytes);
    const payloadPad = (JSON.parse(payload(0)) as { data: string }).data;
    const ctx: ScenarioContext = {
      admin,
      template: template.name,
      receiver,
      concurrency: options.concurrency,
      channels: options.channels,
      inFlightPerChannel: options.inFlightPerChannel,
      payload,
      payloadPad,
      warmupMs: options.warmupMs,
      windowMs: options.windowMs,
      cpuProfileDir: options.cpuProfile ? `${options.outDir}/profiles-${startedAt.toISOString()}` : undefined,
    };
    const window = { warmupMs: options.warmupMs, windowMs: options.windowMs };
    // Rates seen so far, to size each backlog to drain in about options.backlogMs.
    const seen: Record<string, number> = {};
    const sized = (key: string, fallback: number) =>
      Math.max(200, Math.round(((seen[key] ?? fallback) * options.backlogMs) / 1000));
    const drainTimeoutMs = Math.max(60_000, options.backlogMs * 10);

    const runs: ResultsFile["runs"] = [];
    for (let run = 1; run <= options.runs; run++) {
      const values: RunValues = {};
      const details: Record<string, unknown> = {};
      const step = async <T>(scenario: Scenario, fn: () => Promise<T>, show: (result: T) => string) => {
        const t = now();
        const result = await fn();
        details[scenario] = result;
        log(
          `run ${run}/${options.runs}  ${scenario.padEnd(15)} ${show(result)}  (${((now() - t) / 1000).toFixed(1)}s)`,
        );
        return result;
      };
      const fmt = (n: number, d = 0) =>
        n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

      if (has("inserts") || has("post-loop") || has("graphile") || has("graphile-noop")) {
        const db = await admin.create({ label: "baseline" });
        try {
          if (has("inserts")) {
            const rate = await step(
              "inserts",
              () => measureInserts(db, { ...window, clients: options.dbClients, payload: payload(0) }),
              (r) => `${fmt(r)} commits/s`,
            );
            values["baseline.inserts"] = rate;
          }
          if (has("post-loop")) {
            const r = await step(
              "post-loop",
              () => measurePostLoop(receiver, { ...window, concurrency: options.concurrency, body: payload }),
              (r) => `${fmt(r.rate)} req/s, client ${fmt(r.clientCpuMsPerRequest, 3)} ms CPU/req`,
            );
            values["baseline.post_loop"] = r.rate;
            values["baseline.post_loop.client_cpu_ms"] = r.clientCpuMsPerRequest;
            seen.post = r.rate;
          }
          const postRate = seen.post ?? DEFAULT_POST_RATE;
          if (has("graphile")) {
            const r = await step(
              "graphile",
              () =>
                measureGraphile(db, receiver, {
                  concurrency: options.concurrency,
                  jobs: sized("graphile", postRate * 0.15),
                  noop: false,
                  body: payload,
                  timeoutMs: drainTimeoutMs,
                }),
              (r) => `${fmt(r.rate)} jobs/s (drained in ${fmt(r.seconds, 1)}s)`,
            );
            values["baseline.graphile_post"] = r.rate;
            seen.graphile = r.rate;
          }
          if (has("graphile-noop")) {
            const r = await step(
              "graphile-noop",
              () =>
                measureGraphile(db, receiver, {
                  concurrency: options.concurrency,
                  jobs: sized("graphile-noop", postRate),
                  noop: true,
                  body: payload,
                  timeoutMs: drainTimeoutMs,
                }),
              (r) => `${fmt(r.rate)} jobs/s (drained in ${fmt(r.seconds, 1)}s)`,
            );
            values["baseline.graphile_noop"] = r.rate;
            seen["graphile-noop"] = r.rate;
          }
        } finally {
          await db.drop();
        }
      }
      // Sizes httpqueue's backlogs before they were seen: graphile-worker bounds them.
      const graphileRate = () => seen.graphile ?? DEFAULT_GRAPHILE_RATE;

      if (has("ingest")) {
        const r = await step(
          "ingest",
          () => ingestClosedLoop(ctx, "warn"),
          (r) => `${fmt(r.rate)} events/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms`,
        );
        values["ingest.rate"] = r.rate;
        values["ingest.p50_ms"] = r.p50Ms;
        values["ingest.p99_ms"] = r.p99Ms;
        costs("ingest", r.perEvent, values);
      }
      if (has("ingest-rate")) {
        const r = await step(
          "ingest-rate",
          () => ingestOpenLoop(ctx, options.ingestRate),
          (r) =>
            `${fmt(r.achieved)} of ${fmt(r.offered)} events/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms`,
        );
        values["ingest_rate.achieved"] = r.achieved;
        values["ingest_rate.p50_ms"] = r.p50Ms;
        values["ingest_rate.p99_ms"] = r.p99Ms;
      }
      if (has("ingest-info")) {
        const r = await step(
          "ingest-info",
          () => ingestClosedLoop(ctx, "info"),
          (r) => `${fmt(r.rate)} events/s, p99 ${fmt(r.p99Ms, 1)} ms (LOG_LEVEL=info)`,
        );
        values["ingest_info.rate"] = r.rate;
        values["ingest_info.p99_ms"] = r.p99Ms;
        values["ingest_info.server_cpu_ms"] = r.perEvent.serverCpuMs;
      }
      if (has("e2e")) {
        const r = await step(
          "e2e",
          () => endToEnd(ctx, options.e2eRate),
          (r) =>
            `p50 ${fmt(r.p50Ms, 1)} ms, p95 ${fmt(r.p95Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms at ${fmt(r.rate)}/s; ` +
            `machine ${fmt(r.perEvent.machineBusy * 100)}% busy; CPU ms per event: server ${fmt(r.perEvent.serverCpuMs, 3)}, ` +
            `PostgreSQL ${fmt(r.perEvent.postgresCpuMs, 3)}, receiver ${fmt(r.perEvent.receiverCpuMs, 3)}, load ${fmt(r.perEvent.loadCpuMs, 3)}`,
        );
        values["e2e.p50_ms"] = r.p50Ms;
        values["e2e.p95_ms"] = r.p95Ms;
        values["e2e.p99_ms"] = r.p99Ms;
        values["e2e.max_ms"] = r.maxMs;
        values["e2e.lost"] = r.lost;
        values["e2e.push_p99_ms"] = r.pushP99Ms;
      }
      for (const [scenario, fanout, logLevel, prefix] of [
        ["backlog", 1, "warn", "backlog"],
        ["backlog-fanout", options.fanout, "warn", "backlog_fanout"],
        ["backlog-info", 1, "info", "backlog_info"],
      ] as const) {
        if (!has(scenario)) continue;
        const deliveries = sized(scenario, graphileRate() * (fanout > 1 ? 0.5 : 0.25));
        const r = await step(
          scenario,
          () => backlog(ctx, { events: Math.ceil(deliveries / fanout), fanout, logLevel, timeoutMs: drainTimeoutMs }),
          (r) =>
            `${fmt(r.rate)} deliveries/s (${fmt(r.deliveries)} in ${fmt(r.seconds, 1)}s, first after ${fmt(r.firstReceiptSeconds, 1)}s), ` +
            `${fmt(r.perDelivery.commits, 2)} commits, server ${fmt(r.perDelivery.serverCpuMs, 3)} ms, ` +
            `PostgreSQL ${fmt(r.perDelivery.postgresCpuMs, 3)} ms CPU per delivery`,
        );
        seen[scenario] = r.rate;
        values[`${prefix}.rate`] = r.rate;
        if (scenario === "backlog-info") values["backlog_info.server_cpu_ms"] = r.perDelivery.serverCpuMs;
        else costs(prefix, r.perDelivery, values);
        if (scenario === "backlog") values["backlog.machine_busy"] = r.perDelivery.machineBusy * 100;
      }
      for (const [scenario, fanout, prefix, backlogScenario] of [
        ["steady", 1, "steady", "backlog"],
        ["steady-fanout", options.fanout, "steady_fanout", "backlog-fanout"],
      ] as const) {
        if (!has(scenario)) continue;
        // Offered: a quarter more than the service drained from a backlog, so that it
        // is saturated without being buried.
        const drained = seen[backlogScenario] ?? graphileRate() * (fanout > 1 ? 0.5 : 0.25);
        const eventsPerSecond = Math.max(10, Math.round((drained * 1.25) / fanout));
        const r = await step(
          scenario,
          () => steady(ctx, { eventsPerSecond, fanout }),
          (r) =>
            `${fmt(r.rate)} deliveries/s of ${fmt(r.offeredDeliveries)} offered, ${fmt(r.pushed)} events/s answered, ` +
            `server ${fmt(r.perDelivery.serverCpuMs, 3)} ms CPU per delivery`,
        );
        values[`${prefix}.rate`] = r.rate;
        if (scenario === "steady") {
          values["steady.pushed"] = r.pushed;
          values["steady.commits"] = r.perDelivery.commits;
          values["steady.server_cpu_ms"] = r.perDelivery.serverCpuMs;
        }
      }
      runs.push({ values, details });
    }

    const summary = summarise(
      runs.map((r) => r.values),
      targets(options.ingestRate),
    );
    const { databaseUrl: _url, outDir: _out, ...settings } = options;
    return {
      schema: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      durationSeconds: Math.round((now() - began) / 100) / 10,
      mode: options.mode,
      settings,
      machine,
      figures: summary.figures,
      ratios: summary.ratios,
      targets: summary.targets,
      runs,
    };
  } finally {
    await receiver.close();
    await template?.drop();
  }
}
