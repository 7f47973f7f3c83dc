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
import { backlog, steady } from "./delivery.js";
import { endToEnd, ingestClosedLoop, ingestOpenLoop } from "./ingest.js";
import type { UnitCosts } from "./meter.js";
import type { ScenarioContext } from "./scenarios.js";
import { startService } from "./service.js";

export type Log = (line: string) => void;

/** For sizing when the baselines are not among the chosen scenarios. */
const DEFAULT_POST_RATE = 20_000;
const DEFAULT_GRAPHILE_RATE = 4000;
/** Continuous pushes wait while this many deliveries are pushed but not yet received. */
const STEADY_MAX_OUTSTANDING = 1000;
/** backlog-wide: this many webhooks, one event each. */
const WIDE_WEBHOOKS = 1000;
/** hanging: deliveries queued for the receiver that answers after 8 s, beside the measured backlog. */
const HANGING_EVENTS = 300;

/** A migrated database (the server migrates it at its first start) for every scenario to copy. */
async function buildTemplate(admin: DatabaseAdmin, concurrency: number): Promise<BenchDatabase> {
  const db = await admin.create({ label: "template" });
  const service = await startService({ databaseUrl: db.url, logLevel: "warn", concurrency });
  await service.stop();
  return db;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

function costs(prefix: string, c: UnitCosts, values: RunValues) {
  values[`${prefix}.commits`] = c.commits;
  values[`${prefix}.server_cpu_ms`] = c.serverCpuMs;
  values[`${prefix}.postgres_cpu_ms`] = c.postgresCpuMs;
}

const describeCost = (c: UnitCosts) =>
  `${fmt(c.commits, 2)} commits, CPU ms: server ${fmt(c.serverCpuMs, 3)}, PostgreSQL ${fmt(c.postgresCpuMs, 3)}; ` +
  `machine ${fmt(c.machineBusy * 100)}% busy`;

/** How one scenario runs, what it prints, and which figures it fills. */
interface Step<T> {
  run(): Promise<T>;
  show(result: T): string;
  record(result: T, values: RunValues): void;
}

/** Steps of different result types, in one table. */
const step = <T>(s: Step<T>) => s as unknown as Step<unknown>;

export async function runBench(options: BenchOptions, admin: DatabaseAdmin, log: Log): Promise<ResultsFile> {
  const startedAt = new Date();
  const began = now();
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
      serverEnv: options.serverEnv,
    };
    const window = { warmupMs: options.warmupMs, windowMs: options.windowMs };

    // Rates seen so far: backlogs are sized to drain in about options.backlogMs,
    // and the steady push rate follows the backlog rate.
    const seen: Partial<Record<Scenario, number>> = {};
    // Deliveries of this run's `backlog`: `backlog-watched` drains as many.
    let backlogDeliveries: number | undefined;
    const sized = (scenario: Scenario, fallback: number) =>
      Math.max(200, Math.round(((seen[scenario] ?? fallback) * options.backlogMs) / 1000));
    const postRate = () => seen["post-loop"] ?? DEFAULT_POST_RATE;
    const graphileRate = () => seen.graphile ?? DEFAULT_GRAPHILE_RATE;
    const drainTimeoutMs = Math.max(60_000, options.backlogMs * 10);
    let baselineDb: BenchDatabase | undefined;
    const baselineDatabase = async () => (baselineDb ??= await admin.create({ label: "baseline" }));

    const backlogStep = (
      scenario: Scenario,
      fanout: number,
      logLevel: "warn" | "info",
      prefix: string,
      shape: { ownWebhook?: boolean; slowEvents?: number; watch?: boolean } = {},
    ) => ({
      run: () => {
        // 1,000 webhooks with one event each, whatever the window: the worst case of per-webhook batching.
        const deliveries = shape.ownWebhook
          ? WIDE_WEBHOOKS
          : shape.watch
            ? (backlogDeliveries ?? sized("backlog", graphileRate() * 0.25))
            : sized(scenario === "hanging" ? "backlog" : scenario, graphileRate() * (fanout > 1 ? 0.5 : 0.25));
        if (scenario === "backlog") backlogDeliveries = deliveries;
        return backlog(ctx, {
          events: Math.ceil(deliveries / fanout),
          fanout,
          logLevel,
          timeoutMs: drainTimeoutMs,
          ...shape,
        });
      },
      show: (r: Awaited<ReturnType<typeof backlog>>) =>
        `${fmt(r.rate)} deliveries/s (${fmt(r.deliveries)} in ${fmt(r.seconds, 1)}s, first after ` +
        `${fmt(r.firstReceiptSeconds, 1)}s); per delivery: ${describeCost(r.perDelivery)}` +
        (r.watch
          ? `; watcher: ${fmt(r.watch.updates)} updates, ${fmt(r.watch.perDelivery, 2)} per delivery, ` +
            `last ${fmt(r.watch.lagSeconds, 2)}s after the last receipt`
          : ""),
      record: (r: Awaited<ReturnType<typeof backlog>>, values: RunValues) => {
        seen[scenario] = r.rate;
        values[`${prefix}.rate`] = r.rate;
        if (logLevel === "info") values[`${prefix}.server_cpu_ms`] = r.perDelivery.serverCpuMs;
        else costs(prefix, r.perDelivery, values);
        if (scenario === "backlog") values["backlog.machine_busy"] = r.perDelivery.machineBusy * 100;
        if (r.watch) values[`${prefix}.updates_per_delivery`] = r.watch.perDelivery;
      },
    });

    const steadyStep = (fanout: number, prefix: string) => ({
      run: () => steady(ctx, { fanout, maxOutstanding: STEADY_MAX_OUTSTANDING }),
      show: (r: Awaited<ReturnType<typeof steady>>) =>
        `${fmt(r.rate)} deliveries/s, ${fmt(r.pushed)} events/s pushed meanwhile; per delivery: ${describeCost(r.perDelivery)}`,
      record: (r: Awaited<ReturnType<typeof steady>>, values: RunValues) => {
        values[`${prefix}.rate`] = r.rate;
        if (fanout === 1) {
          values["steady.pushed"] = r.pushed;
          values["steady.commits"] = r.perDelivery.commits;
          values["steady.server_cpu_ms"] = r.perDelivery.serverCpuMs;
        }
      },
    });

    const steps: Record<Scenario, Step<unknown>> = {
      inserts: step({
        run: async () =>
          measureInserts(await baselineDatabase(), { ...window, clients: options.dbClients, payload: payload(0) }),
        show: (rate: number) => `${fmt(rate)} commits/s`,
        record: (rate: number, values: RunValues) => {
          values["baseline.inserts"] = rate;
        },
      }),
      "post-loop": step({
        run: () => measurePostLoop(receiver, { ...window, concurrency: options.concurrency, body: payload }),
        show: (r: Awaited<ReturnType<typeof measurePostLoop>>) =>
          `${fmt(r.rate)} req/s, client ${fmt(r.clientCpuMsPerRequest, 3)} ms CPU/request`,
        record: (r: Awaited<ReturnType<typeof measurePostLoop>>, values: RunValues) => {
          seen["post-loop"] = r.rate;
          values["baseline.post_loop"] = r.rate;
          values["baseline.post_loop.client_cpu_ms"] = r.clientCpuMsPerRequest;
        },
      }),
      graphile: step({
        run: async () =>
          measureGraphile(await baselineDatabase(), receiver, {
            concurrency: options.concurrency,
            jobs: sized("graphile", postRate() * 0.15),
            noop: false,
            body: payload,
            timeoutMs: drainTimeoutMs,
          }),
        show: (r: Awaited<ReturnType<typeof measureGraphile>>) =>
          `${fmt(r.rate)} jobs/s (drained in ${fmt(r.seconds, 1)}s)`,
        record: (r: Awaited<ReturnType<typeof measureGraphile>>, values: RunValues) => {
          seen.graphile = r.rate;
          values["baseline.graphile_post"] = r.rate;
        },
      }),
      "graphile-noop": step({
        run: async () =>
          measureGraphile(await baselineDatabase(), receiver, {
            concurrency: options.concurrency,
            jobs: sized("graphile-noop", postRate()),
            noop: true,
            body: payload,
            timeoutMs: drainTimeoutMs,
          }),
        show: (r: Awaited<ReturnType<typeof measureGraphile>>) =>
          `${fmt(r.rate)} jobs/s (drained in ${fmt(r.seconds, 1)}s)`,
        record: (r: Awaited<ReturnType<typeof measureGraphile>>, values: RunValues) => {
          seen["graphile-noop"] = r.rate;
          values["baseline.graphile_noop"] = r.rate;
        },
      }),
      ingest: step({
        run: () => ingestClosedLoop(ctx, "warn"),
        show: (r: Awaited<ReturnType<typeof ingestClosedLoop>>) =>
          `${fmt(r.rate)} events/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms; per event: ${describeCost(r.perEvent)}`,
        record: (r: Awaited<ReturnType<typeof ingestClosedLoop>>, values: RunValues) => {
          values["ingest.rate"] = r.rate;
          values["ingest.p50_ms"] = r.p50Ms;
          values["ingest.p99_ms"] = r.p99Ms;
          costs("ingest", r.perEvent, values);
        },
      }),
      "ingest-rate": step({
        run: () => ingestOpenLoop(ctx, options.ingestRate),
        show: (r: Awaited<ReturnType<typeof ingestOpenLoop>>) =>
          `${fmt(r.achieved)} of ${fmt(r.offered)} events/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms`,
        record: (r: Awaited<ReturnType<typeof ingestOpenLoop>>, values: RunValues) => {
          values["ingest_rate.achieved"] = r.achieved;
          values["ingest_rate.p50_ms"] = r.p50Ms;
          values["ingest_rate.p99_ms"] = r.p99Ms;
        },
      }),
      "ingest-info": step({
        run: () => ingestClosedLoop(ctx, "info"),
        show: (r: Awaited<ReturnType<typeof ingestClosedLoop>>) =>
          `${fmt(r.rate)} events/s, p99 ${fmt(r.p99Ms, 1)} ms (LOG_LEVEL=info); server ${fmt(r.perEvent.serverCpuMs, 3)} ms CPU per event`,
        record: (r: Awaited<ReturnType<typeof ingestClosedLoop>>, values: RunValues) => {
          values["ingest_info.rate"] = r.rate;
          values["ingest_info.p99_ms"] = r.p99Ms;
          values["ingest_info.server_cpu_ms"] = r.perEvent.serverCpuMs;
        },
      }),
      e2e: step({
        run: () => endToEnd(ctx, options.e2eRate),
        show: (r: Awaited<ReturnType<typeof endToEnd>>) =>
          `p50 ${fmt(r.p50Ms, 1)} ms, p95 ${fmt(r.p95Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms at ${fmt(r.rate)}/s` +
          `${r.lost > 0 ? `, ${fmt(r.lost)} lost` : ""}; per event: ${describeCost(r.perEvent)}`,
        record: (r: Awaited<ReturnType<typeof endToEnd>>, values: RunValues) => {
          values["e2e.p50_ms"] = r.p50Ms;
          values["e2e.p95_ms"] = r.p95Ms;
          values["e2e.p99_ms"] = r.p99Ms;
          values["e2e.max_ms"] = r.maxMs;
          values["e2e.lost"] = r.lost;
          values["e2e.push_p99_ms"] = r.pushP99Ms;
          values["e2e.server_cpu_ms"] = r.perEvent.serverCpuMs;
          values["e2e.postgres_cpu_ms"] = r.perEvent.postgresCpuMs;
          values["e2e.machine_busy"] = r.perEvent.machineBusy * 100;
        },
      }),
      backlog: step(backlogStep("backlog", 1, "warn", "backlog")),
      "backlog-watched": step(backlogStep("backlog-watched", 1, "warn", "backlog_watched", { watch: true })),
      "backlog-fanout": step(backlogStep("backlog-fanout", options.fanout, "warn", "backlog_fanout")),
      "backlog-wide": step(backlogStep("backlog-wide", 1, "warn", "backlog_wide", { ownWebhook: true })),
      hanging: step(backlogStep("hanging", 1, "warn", "hanging", { slowEvents: HANGING_EVENTS })),
      "backlog-info": step(backlogStep("backlog-info", 1, "info", "backlog_info")),
      steady: step(steadyStep(1, "steady")),
      "steady-fanout": step(steadyStep(options.fanout, "steady_fanout")),
    };

    const runs: ResultsFile["runs"] = [];
    const failures: ResultsFile["failures"] = [];
    for (let run = 1; run <= options.runs; run++) {
      backlogDeliveries = undefined;
      const values: RunValues = {};
      const details: Record<string, unknown> = {};
      try {
        for (const scenario of options.scenarios) {
          const current = steps[scenario];
          const t = now();
          const prefix = `run ${run}/${options.runs}  ${scenario.padEnd(15)}`;
          try {
            const result = await current.run();
            details[scenario] = result;
            current.record(result, values);
            log(`${prefix} ${current.show(result)}  (${((now() - t) / 1000).toFixed(1)}s)`);
          } catch (err) {
            // Reported, and left out of this run's figures; the other scenarios still run.
            const error = err instanceof Error ? err.message : String(err);
            details[scenario] = { error };
            failures.push({ run, scenario, error });
            log(`${prefix} FAILED: ${error}`);
          }
        }
      } finally {
        await baselineDb?.drop();
        baselineDb = undefined;
      }
      runs.push({ values, details });
    }

    const summary = summarise(
      runs.map((r) => r.values),
      targets(options.ingestRate, options.e2eRate),
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
      failures,
      runs,
    };
  } finally {
    await receiver.close();
    await template?.drop();
  }
}
