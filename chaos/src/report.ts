import Table from "cli-table3";

export interface ScenarioResult {
  name: string;
  title: string;
  /** Label and value, in the order printed. */
  figures: [string, string][];
  /** Promises broken, each saying which and by how much; empty when every promise held. */
  broken: string[];
  seconds: number;
}

export const count = (n: number) => n.toLocaleString("en-US");
export const seconds = (ms: number | undefined) => (ms === undefined ? "–" : `${(ms / 1000).toFixed(2)} s`);
export const millis = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(0)} ms` : "–");

/** Counts by name as "OK 5, UNAVAILABLE 3" (largest first), or "none". */
export function histogram(counts: ReadonlyMap<string, number>): string {
  const entries = [...counts.entries()];
  if (entries.length === 0) return "none";
  return entries
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([name, n]) => `${name} ${count(n)}`)
    .join(", ");
}

/** The scenario's table: its figures, then whether its promises held. */
export function renderResult(result: ScenarioResult): string {
  const table = new Table({
    head: [`${result.name}: ${result.title}`, `${result.seconds.toFixed(0)} s`],
    colAligns: ["left", "right"],
    colWidths: [62, 58],
    wordWrap: true,
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
    style: { head: [], border: [] },
  });
  for (const [label, value] of result.figures) table.push([label, value]);
  const verdict =
    result.broken.length === 0
      ? "every promise held"
      : `PROMISE BROKEN:\n${result.broken.map((line) => `  - ${line}`).join("\n")}`;
  return `${table.toString()}\n${verdict}\n`;
}

/** Error lines a server logged, as "3 (rpc failed 2, …)" by their message, or "0". */
export function errorSummary(lines: readonly string[]): string {
  if (lines.length === 0) return "0";
  const byMessage = new Map<string, number>();
  for (const line of lines) {
    let msg = "unreadable line";
    try {
      const parsed = (JSON.parse(line) as { msg?: unknown }).msg;
      msg = typeof parsed === "string" ? parsed : "no message";
    } catch {
      // Kept as "unreadable line".
    }
    byMessage.set(msg, (byMessage.get(msg) ?? 0) + 1);
  }
  return `${count(lines.length)} (${histogram(byMessage)})`;
}
