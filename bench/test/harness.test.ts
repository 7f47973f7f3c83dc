import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import type { BacklogResult } from "../src/delivery.js";
import type { ResultsFile } from "../src/report.js";

const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));

/** Runs the harness (as `pnpm bench` does, but from its sources) and returns its exit code and output. */
function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      resolve({ code, stdout, stderr });
    }),
  );
}

describe("the benchmark harness", () => {
  const out = mkdtempSync(join(tmpdir(), "httpqueue-bench-"));
  after(() => {
    rmSync(out, { recursive: true, force: true });
  });

  it("runs every scenario, prints the table and writes every figure, ratio and target", async () => {
    // Tiny windows: this checks that the harness works, not how fast anything is.
    const { code, stdout, stderr } = await bench([
      "--runs=1",
      "--window=0.4",
      "--warmup=0.2",
      "--concurrency=4",
      "--db-clients=2",
      "--channels=2",
      "--in-flight=2",
      "--fanout=3",
      "--ingest-rate=50",
      "--e2e-rate=50",
      `--out=${out}`,
      "--server-env=WEBHOOK_MAX_IN_FLIGHT=8",
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /\(a\) bare undici POST loop/);
    assert.match(stdout, /deliveries\/s ≥ 0\.5 × bare POST loop/);

    const [file] = readdirSync(out).filter((f) => f.endsWith(".json"));
    assert.ok(file, "a results file");
    const results = JSON.parse(readFileSync(join(out, file), "utf8")) as ResultsFile;
    assert.equal(results.schema, 1);
    assert.deepEqual(results.failures, []);
    assert.equal(results.machine.cores > 0, true);
    assert.match(results.machine.node, /^v\d+/);
    assert.ok(results.machine.postgres.server_version);
    assert.equal(results.runs.length, 1);
    assert.deepEqual(results.settings.serverEnv, { WEBHOOK_MAX_IN_FLIGHT: "8" }, "server settings are recorded");

    const figures = [
      "baseline.post_loop",
      "baseline.graphile_post",
      "baseline.graphile_noop",
      "baseline.inserts",
      "ingest.rate",
      "ingest.p99_ms",
      "ingest_rate.achieved",
      "ingest_info.rate",
      "backlog.rate",
      "backlog.commits",
      "backlog.server_cpu_ms",
      "backlog.postgres_cpu_ms",
      "backlog_watched.rate",
      "backlog_watched.updates_per_delivery",
      "backlog_watched.server_cpu_ms",
      "backlog_fanout.rate",
      "backlog_wide.rate",
      "hanging.rate",
      "backlog_info.rate",
      "steady.rate",
      "steady_fanout.rate",
      "e2e.p50_ms",
      "e2e.p99_ms",
    ];
    for (const id of figures) {
      const figure = results.figures[id];
      assert.ok(figure, `figure ${id}`);
      assert.ok(Number.isFinite(figure.median) && figure.median >= 0, `${id} is a number: ${figure.median}`);
    }
    assert.equal(results.figures["e2e.lost"]?.median, 0, "every event pushed was delivered");
    assert.ok(results.ratios["backlog.rate/baseline.post_loop"]);
    assert.ok(results.ratios["backlog_watched.rate/baseline.post_loop"]);
    assert.ok(results.ratios["backlog_watched.rate/backlog.rate"]);
    // The stream read every update: each delivery's creation and its success.
    assert.equal(results.figures["backlog_watched.updates_per_delivery"]?.median, 2);
    const watched = results.runs[0]?.details["backlog-watched"] as BacklogResult | undefined;
    assert.deepEqual(watched?.watch?.byStatus, { PENDING: watched?.deliveries, SUCCEEDED: watched?.deliveries });
    assert.ok(results.ratios["hanging.rate/backlog.rate"]);
    assert.deepEqual(
      results.targets.map((t) => t.id),
      ["deliveries", "steady", "cost", "hanging", "ingest", "e2e"],
    );
    for (const target of results.targets) assert.notEqual(target.met, null, `${target.id} was judged`);
  });
});
