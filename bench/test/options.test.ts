import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseOptions, SCENARIOS, UsageError, type BenchOptions } from "../src/options.js";

const parse = (...args: string[]) => parseOptions(args, {}) as BenchOptions;

describe("options", () => {
  it("runs every scenario three times by default, with the server's own concurrency and pool size", () => {
    const options = parse();
    assert.equal(options.mode, "full");
    assert.equal(options.runs, 3);
    assert.deepEqual(options.scenarios, [...SCENARIOS]);
    assert.equal(options.concurrency, 64);
    assert.equal(options.dbClients, 10);
    assert.equal(options.e2eRate, 500);
    assert.equal(options.ingestRate, 2000);
    assert.equal(options.databaseUrl, "postgres://postgres@127.0.0.1:5432/postgres");
  });

  it("--quick shortens the windows and leaves out the variants; pnpm's -- passes through", () => {
    const full = parse();
    const quick = parse("--", "--quick");
    assert.equal(quick.mode, "quick");
    assert.ok(quick.windowMs < full.windowMs);
    assert.ok(quick.scenarios.length < full.scenarios.length);
    for (const headline of ["inserts", "post-loop", "graphile", "ingest", "ingest-rate", "e2e", "backlog", "steady"]) {
      assert.ok(quick.scenarios.includes(headline as never), `--quick measures ${headline}`);
    }
  });

  it("takes a subset of scenarios, in run order, and other settings", () => {
    const options = parse("--only", "e2e,inserts", "--runs", "5", "--window", "0.5", "--concurrency", "8");
    assert.deepEqual(options.scenarios, ["inserts", "e2e"]);
    assert.equal(options.runs, 5);
    assert.equal(options.windowMs, 500);
    assert.equal(options.concurrency, 8);
    assert.equal(parseOptions([], { BENCH_DATABASE_URL: "postgres://u@h/db" }) !== "help" && "ok", "ok");
    assert.equal(
      (parseOptions([], { BENCH_DATABASE_URL: "postgres://u@h/db" }) as BenchOptions).databaseUrl,
      "postgres://u@h/db",
    );
  });

  it("refuses unknown scenarios, flags and bad numbers", () => {
    assert.throws(() => parse("--only", "nope"), UsageError);
    assert.throws(() => parse("--frobnicate"), UsageError);
    assert.throws(() => parse("--runs", "0"), /--runs must be a positive whole number/);
    assert.throws(() => parse("--runs", "2.5"), UsageError);
    assert.throws(() => parse("--window", "soon"), UsageError);
    assert.equal(parseOptions(["--help"], {}), "help");
  });
});
