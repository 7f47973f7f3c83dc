// What the harness reports: figures (a value per run, summarised by the
// median), ratios (computed within each run, then the median), and targets.
import { median } from "./stats.js";

export interface FigureDef {
  id: string;
  label: string;
  unit: string;
  /** Section of the table. */
  group: "baselines" | "ingest" | "delivery" | "latency" | "cost";
  decimals: number;
}

const f = (id: string, group: FigureDef["group"], label: string, unit: string, decimals = 0): FigureDef => ({
  id,
  group,
  label,
  unit,
  decimals,
});

/** Every figure, in table order. A run fills those of the scenarios it ran. */
export const FIGURES: readonly FigureDef[] = [
  f("baseline.post_loop", "baselines", "(a) bare undici POST loop", "req/s"),
  f("baseline.post_loop.client_cpu_ms", "baselines", "(a) client CPU per request", "ms", 3),
  f("baseline.graphile_post", "baselines", "(b) graphile-worker, task = that POST", "jobs/s"),
  f("baseline.graphile_noop", "baselines", "(b0) graphile-worker, task = nothing", "jobs/s"),
  f("baseline.inserts", "baselines", "(c) single-row INSERT commits", "commits/s"),

  f("ingest.rate", "ingest", "PushEvent, closed loop", "events/s"),
  f("ingest.p50_ms", "ingest", "  RPC latency p50", "ms", 1),
  f("ingest.p99_ms", "ingest", "  RPC latency p99", "ms", 1),
  f("ingest_rate.achieved", "ingest", "PushEvent at the target rate, answered", "events/s"),
  f("ingest_rate.p50_ms", "ingest", "  RPC latency p50", "ms", 1),
  f("ingest_rate.p99_ms", "ingest", "  RPC latency p99", "ms", 1),
  f("ingest_info.rate", "ingest", "PushEvent, closed loop, LOG_LEVEL=info", "events/s"),
  f("ingest_info.p99_ms", "ingest", "  RPC latency p99", "ms", 1),

  f("backlog.rate", "delivery", "backlog, 1 webhook per event", "deliveries/s"),
  f("backlog_watched.rate", "delivery", "backlog, 1 webhook, 1 WatchDeliveries stream open", "deliveries/s"),
  f("backlog_watched.updates_per_delivery", "delivery", "  updates the stream received per delivery", "updates", 2),
  f("backlog_fanout.rate", "delivery", "backlog, fan-out to N webhooks", "deliveries/s"),
  f("backlog_wide.rate", "delivery", "backlog, 1,000 webhooks with 1 event each", "deliveries/s"),
  f("hanging.rate", "delivery", "backlog, 1 webhook, beside 300 to a receiver hanging 8 s", "deliveries/s"),
  f("backlog_info.rate", "delivery", "backlog, 1 webhook, LOG_LEVEL=info", "deliveries/s"),
  f("steady.rate", "delivery", "steady push, 1 webhook per event", "deliveries/s"),
  f("steady.pushed", "delivery", "  events answered meanwhile", "events/s"),
  f("steady_fanout.rate", "delivery", "steady push, fan-out to N webhooks", "deliveries/s"),

  f("e2e.p50_ms", "latency", "push → receipt p50", "ms", 1),
  f("e2e.p95_ms", "latency", "push → receipt p95", "ms", 1),
  f("e2e.p99_ms", "latency", "push → receipt p99", "ms", 1),
  f("e2e.max_ms", "latency", "push → receipt max", "ms", 1),
  f("e2e.lost", "latency", "events not received", "events"),
  f("e2e.push_p99_ms", "latency", "PushEvent p99 at that rate", "ms", 1),

  f("e2e.server_cpu_ms", "cost", "e2e at the e2e rate: server CPU per event", "ms", 3),
  f("e2e.postgres_cpu_ms", "cost", "e2e at the e2e rate: PostgreSQL CPU per event", "ms", 3),
  f("e2e.machine_busy", "cost", "e2e at the e2e rate: machine CPU busy", "%"),
  f("ingest.commits", "cost", "ingest: commits per event", "commits", 2),
  f("ingest.server_cpu_ms", "cost", "ingest: server CPU per event", "ms", 3),
  f("ingest.postgres_cpu_ms", "cost", "ingest: PostgreSQL CPU per event", "ms", 3),
  f("ingest_info.server_cpu_ms", "cost", "ingest, LOG_LEVEL=info: server CPU per event", "ms", 3),
  f("backlog.commits", "cost", "backlog, 1 webhook: commits per delivery", "commits", 2),
  f("backlog.server_cpu_ms", "cost", "backlog, 1 webhook: server CPU per delivery", "ms", 3),
  f("backlog.postgres_cpu_ms", "cost", "backlog, 1 webhook: PostgreSQL CPU per delivery", "ms", 3),
  f("backlog.machine_busy", "cost", "backlog, 1 webhook: machine CPU busy", "%"),
  f("backlog_watched.commits", "cost", "backlog, 1 webhook, watched: commits per delivery", "commits", 2),
  f("backlog_watched.server_cpu_ms", "cost", "backlog, 1 webhook, watched: server CPU per delivery", "ms", 3),
  f("backlog_watched.postgres_cpu_ms", "cost", "backlog, 1 webhook, watched: PostgreSQL CPU per delivery", "ms", 3),
  f("backlog_fanout.commits", "cost", "backlog, fan-out: commits per delivery", "commits", 2),
  f("backlog_fanout.server_cpu_ms", "cost", "backlog, fan-out: server CPU per delivery", "ms", 3),
  f("backlog_fanout.postgres_cpu_ms", "cost", "backlog, fan-out: PostgreSQL CPU per delivery", "ms", 3),
  f("backlog_info.server_cpu_ms", "cost", "backlog, LOG_LEVEL=info: server CPU per delivery", "ms", 3),
  f("steady.commits", "cost", "steady, 1 webhook: commits per delivery", "commits", 2),
  f("steady.server_cpu_ms", "cost", "steady, 1 webhook: server CPU per delivery (pushes included)", "ms", 3),
];

export interface RatioDef {
  id: string;
  numerator: string;
  denominator: string;
  label: string;
}

const r = (numerator: string, denominator: string, label: string): RatioDef => ({
  id: `${numerator}/${denominator}`,
  numerator,
  denominator,
  label,
});

export const RATIOS: readonly RatioDef[] = [
  r("baseline.graphile_post", "baseline.post_loop", "(b) / (a)"),
  r("backlog.rate", "baseline.post_loop", "backlog ×1 / (a)"),
  r("backlog.rate", "baseline.graphile_post", "backlog ×1 / (b)"),
  r("backlog_watched.rate", "baseline.post_loop", "backlog ×1 watched / (a)"),
  r("backlog_watched.rate", "backlog.rate", "backlog ×1 watched / unwatched"),
  r("backlog_fanout.rate", "baseline.post_loop", "backlog fan-out / (a)"),
  r("backlog_wide.rate", "baseline.post_loop", "backlog 1,000 webhooks × 1 / (a)"),
  r("hanging.rate", "backlog.rate", "backlog ×1 beside a hanging receiver / alone"),
  r("steady.rate", "baseline.post_loop", "steady ×1 / (a)"),
  r("steady_fanout.rate", "baseline.post_loop", "steady fan-out / (a)"),
  r("ingest.rate", "baseline.inserts", "ingest / (c)"),
  r("ingest_info.rate", "ingest.rate", "ingest info / warn"),
  r("backlog_info.rate", "backlog.rate", "backlog info / warn"),
  r(
    "backlog.server_cpu_ms",
    "baseline.post_loop.client_cpu_ms",
    "server CPU per delivery / (a) client CPU per request",
  ),
];

export interface TargetDef {
  id: string;
  label: string;
  /** The figure or ratio ids it is judged on, with their bounds. */
  checks: { id: string; op: ">=" | "<=" | "<"; bound: number }[];
}

/** The first targets for this machine, at the offered rates of the ingest check and of the latency figure. */
export function targets(ingestRate: number, e2eRate: number): TargetDef[] {
  return [
    {
      id: "deliveries",
      label: "deliveries/s ≥ 0.5 × bare POST loop (a): backlog with 1 webhook per event, and fan-out",
      checks: [
        { id: "backlog.rate/baseline.post_loop", op: ">=", bound: 0.5 },
        { id: "backlog_fanout.rate/baseline.post_loop", op: ">=", bound: 0.5 },
      ],
    },
    {
      id: "steady",
      label: "deliveries/s under continuous pushes ≥ 0.3 × (a), 1 webhook per event",
      checks: [{ id: "steady.rate/baseline.post_loop", op: ">=", bound: 0.3 }],
    },
    {
      id: "cost",
      label: "backlog: server CPU per delivery ≤ 3 × (a)'s client CPU per request, ≤ 0.1 commits per delivery",
      checks: [
        { id: "backlog.server_cpu_ms/baseline.post_loop.client_cpu_ms", op: "<=", bound: 3 },
        { id: "backlog.commits", op: "<=", bound: 0.1 },
      ],
    },
    {
      id: "hanging",
      label: "a webhook's deliveries beside a hanging receiver ≥ 0.8 × alone",
      checks: [{ id: "hanging.rate/backlog.rate", op: ">=", bound: 0.8 }],
    },
    {
      id: "ingest",
      label: `ingest ≥ ${ingestRate} events/s with p99 < 50 ms (${ingestRate}/s offered)`,
      checks: [
        // A window's count may fall a call or two short of the offered rate.
        { id: "ingest_rate.achieved", op: ">=", bound: ingestRate * 0.99 },
        { id: "ingest_rate.p99_ms", op: "<", bound: 50 },
      ],
    },
    {
      id: "e2e",
      label: `end-to-end p50 ≤ 20 ms and p99 ≤ 100 ms at ${e2eRate} events/s`,
      checks: [
        { id: "e2e.p50_ms", op: "<=", bound: 20 },
        { id: "e2e.p99_ms", op: "<=", bound: 100 },
      ],
    },
  ];
}

/** One run's figures, by id. */
export type RunValues = Record<string, number>;

export interface Summary {
  figures: Record<string, { median: number; runs: number[]; min: number; max: number } & FigureDef>;
  ratios: Record<string, { median: number; runs: number[] } & RatioDef>;
  targets: (TargetDef & { met: boolean | null; values: Record<string, number> })[];
}

export function summarise(runs: RunValues[], targetDefs: TargetDef[]): Summary {
  const figures: Summary["figures"] = {};
  for (const def of FIGURES) {
    const values = runs.map((run) => run[def.id]).filter((v): v is number => v !== undefined);
    if (values.length === 0) continue;
    figures[def.id] = {
      ...def,
      median: median(values),
      runs: values,
      min: Math.min(...values),
      max: Math.max(...values),
    };
  }
  const ratios: Summary["ratios"] = {};
  for (const def of RATIOS) {
    const values = runs
      .map((run) => {
        const num = run[def.numerator];
        const den = run[def.denominator];
        return num === undefined || den === undefined || den === 0 ? undefined : num / den;
      })
      .filter((v): v is number => v !== undefined);
    if (values.length === 0) continue;
    ratios[def.id] = { ...def, median: median(values), runs: values };
  }
  const judged = targetDefs.map((def) => {
    const values: Record<string, number> = {};
    const results = def.checks.map((check) => {
      const value = figures[check.id]?.median ?? ratios[check.id]?.median;
      if (value === undefined || Number.isNaN(value)) return undefined;
      values[check.id] = value;
      return check.op === ">=" ? value >= check.bound : check.op === "<=" ? value <= check.bound : value < check.bound;
    });
    const met = results.includes(undefined) ? null : results.every(Boolean);
    return { ...def, met, values };
  });
  return { figures, ratios, targets: judged };
}
