import { parseArgs } from "node:util";

/** Every scenario, in the order a run measures them. */
export const SCENARIOS = [
  "inserts",
  "post-loop",
  "graphile",
  "graphile-noop",
  "ingest",
  "ingest-rate",
  "ingest-info",
  "e2e",
  "backlog",
  "backlog-watched",
  "backlog-fanout",
  "backlog-wide",
  "hanging",
  "backlog-info",
  "steady",
  "steady-fanout",
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Left out of --quick: references and variants that the headline figures do not need. */
const NOT_QUICK: readonly Scenario[] = ["graphile-noop", "ingest-info", "backlog-info", "steady-fanout"];

export interface BenchOptions {
  mode: "quick" | "full";
  runs: number;
  scenarios: Scenario[];
  /** Load before a measurement window, and the window. */
  warmupMs: number;
  windowMs: number;
  /** A backlog is sized to take about this long to drain. */
  backlogMs: number;
  /** WORKER_CONCURRENCY of the server; also the concurrency of baselines (a) and (b). */
  concurrency: number;
  /** DATABASE_POOL_SIZE of the server (its default); also the client count of baseline (c). */
  dbClients: number;
  channels: number;
  inFlightPerChannel: number;
  payloadBytes: number;
  /** Offered rates: ingest target, end-to-end latency. */
  ingestRate: number;
  e2eRate: number;
  fanout: number;
  databaseUrl: string;
  outDir: string;
  cpuProfile: boolean;
  /** More settings for every server started (`--server-env NAME=VALUE`). */
  serverEnv: Record<string, string>;
}

export const USAGE = `usage: pnpm bench [-- options]

  --quick              a shorter run (under 2 minutes): shorter windows, fewer variants
  --runs <n>           runs of every figure; each figure is the median (default 3)
  --only <names>       comma-separated scenarios: ${SCENARIOS.join(", ")}
  --window <s>         measurement window (default 8, quick 2)
  --warmup <s>         load before each window (default 2, quick 1)
  --concurrency <n>    WORKER_CONCURRENCY, and the concurrency of baselines (a) and (b) (default 64, the server's default)
  --db-clients <n>     connections of baseline (c): the server's DATABASE_POOL_SIZE (default 10)
  --channels <n>       gRPC client channels pushing events (default 4)
  --in-flight <n>      calls in flight per channel, closed-loop ingest (default 8)
  --payload-bytes <n>  size of each event's JSON payload (default 256)
  --ingest-rate <n>    offered PushEvent rate of the ingest target check (default 2000)
  --e2e-rate <n>       offered event rate of the end-to-end latency figure (default 500)
  --fanout <n>         webhooks per event in the fan-out figures (default 10)
  --database-url <u>   PostgreSQL to create databases in (BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres)
  --out <dir>          where results/<timestamp>.json goes (default bench/results)
  --cpu-prof           also write a CPU profile of every server started (node --cpu-prof) next to the results
  --server-env <N=V>   a setting for every server started, e.g. --server-env WEBHOOK_MAX_IN_FLIGHT=32 (repeatable)
`;

export class UsageError extends Error {
  override name = "UsageError";
}

function positive(name: string, text: string | undefined, fallback: number, integer = true): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be a positive ${integer ? "whole " : ""}number, not "${text}"`);
  }
  return value;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions | "help" {
  // `pnpm bench -- --quick` passes the "--" through.
  const args = argv.filter((arg) => arg !== "--");
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        quick: { type: "boolean" },
        runs: { type: "string" },
        only: { type: "string" },
        window: { type: "string" },
        warmup: { type: "string" },
        concurrency: { type: "string" },
        "db-clients": { type: "string" },
        channels: { type: "string" },
        "in-flight": { type: "string" },
        "payload-bytes": { type: "string" },
        "ingest-rate": { type: "string" },
        "e2e-rate": { type: "string" },
        fanout: { type: "string" },
        "database-url": { type: "string" },
        out: { type: "string" },
        "cpu-prof": { type: "boolean" },
        "server-env": { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return "help";
  const quick = values.quick === true;
  let scenarios: Scenario[] = SCENARIOS.filter((s) => !quick || !NOT_QUICK.includes(s));
  if (values.only !== undefined) {
    const names = values.only.split(",").map((s) => s.trim());
    const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
    if (unknown.length > 0) throw new UsageError(`unknown scenario(s): ${unknown.join(", ")}`);
    scenarios = SCENARIOS.filter((s) => names.includes(s));
  }
  const windowMs = positive("window", values.window, quick ? 2 : 8, false) * 1000;
  return {
    mode: quick ? "quick" : "full",
    runs: positive("runs", values.runs, 3),
    scenarios,
    warmupMs: positive("warmup", values.warmup, quick ? 1 : 2, false) * 1000,
    windowMs,
    backlogMs: windowMs,
    concurrency: positive("concurrency", values.concurrency, 64),
    dbClients: positive("db-clients", values["db-clients"], 10),
    channels: positive("channels", values.channels, 4),
    inFlightPerChannel: positive("in-flight", values["in-flight"], 8),
    payloadBytes: positive("payload-bytes", values["payload-bytes"], 256),
    ingestRate: positive("ingest-rate", values["ingest-rate"], 2000),
    e2eRate: positive("e2e-rate", values["e2e-rate"], 500),
    fanout: positive("fanout", values.fanout, 10),
    databaseUrl:
      values["database-url"] ??
      env.BENCH_DATABASE_URL ??
      env.TEST_DATABASE_URL ??
      "postgres://postgres@127.0.0.1:5432/postgres",
    outDir: values.out ?? new URL("../results", import.meta.url).pathname,
    cpuProfile: values["cpu-prof"] === true,
    serverEnv: Object.fromEntries(
      (values["server-env"] ?? []).map((entry): [string, string] => {
        const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(entry);
        if (!match) throw new UsageError(`--server-env takes NAME=VALUE, not "${entry}"`);
        return [match[1] ?? "", match[2] ?? ""];
      }),
    ),
  };
}
