import Table from "cli-table3";
import { FIGURES, type Summary } from "./figures.js";
import type { Machine } from "./machine.js";
import type { BenchOptions } from "./options.js";

/** The results file: every figure and ratio, the runs behind them, the machine and the settings. */
export interface ResultsFile {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  mode: BenchOptions["mode"];
  settings: Omit<BenchOptions, "databaseUrl" | "outDir">;
  machine: Machine;
  figures: Summary["figures"];
  ratios: Summary["ratios"];
  targets: Summary["targets"];
  /** Scenarios that failed (their figures are missing from that run). */
  failures: { run: number; scenario: string; error: string }[];
  /** Per run: the figures, and each scenario's full result. */
  runs: { values: Record<string, number>; details: Record<string, unknown> }[];
}

export function formatNumber(value: number, decimals: number): string {
  if (Number.isNaN(value)) return "–";
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

const GROUP_TITLES: Record<string, string> = {
  baselines: "Baselines (same run)",
  ingest: "httpqueue: ingest",
  delivery: "httpqueue: delivery throughput",
  latency: "httpqueue: end-to-end latency",
  cost: "httpqueue: cost",
};

/** The terminal table: figures by section, then ratios, then targets. */
export function renderTable(
  summary: Summary,
  options: Pick<BenchOptions, "fanout" | "ingestRate" | "e2eRate">,
): string {
  const figures = new Table({
    head: ["figure", "median", "unit", "runs"],
    colAligns: ["left", "right", "left", "right"],
    style: { head: [], border: [] },
  });
  let group = "";
  for (const def of FIGURES) {
    const fig = summary.figures[def.id];
    if (!fig) continue;
    if (def.group !== group) {
      group = def.group;
      figures.push([{ colSpan: 4, content: GROUP_TITLES[group] ?? group }]);
    }
    const label = def.label
      .replace("fan-out to N", `fan-out to ${options.fanout}`)
      .replace("at the target rate", `at ${options.ingestRate}/s offered`)
      .replace("push → receipt", `push → receipt at ${options.e2eRate}/s,`)
      .replace("at the e2e rate", `at ${options.e2eRate}/s`);
    figures.push([
      label,
      formatNumber(fig.median, fig.decimals),
      fig.unit,
      fig.runs.map((v) => formatNumber(v, fig.decimals)).join("  "),
    ]);
  }
  const ratios = new Table({
    head: ["ratio (within each run, median)", "median", "runs"],
    colAligns: ["left", "right", "right"],
    style: { head: [], border: [] },
  });
  for (const ratio of Object.values(summary.ratios)) {
    ratios.push([ratio.label, formatNumber(ratio.median, 2), ratio.runs.map((v) => formatNumber(v, 2)).join("  ")]);
  }
  const targets = new Table({
    head: ["target", "measured", "met"],
    style: { head: [], border: [] },
  });
  for (const target of summary.targets) {
    const measured = Object.entries(target.values)
      .map(([id, v]) => `${id} ${formatNumber(v, id.includes("/") ? 2 : 1)}`)
      .join(", ");
    targets.push([target.label, measured || "not measured", target.met === null ? "–" : target.met ? "yes" : "NO"]);
  }
  return `${figures.toString()}\n${ratios.toString()}\n${targets.toString()}\n`;
}
