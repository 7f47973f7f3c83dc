import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { summarise, targets } from "../src/figures.js";

describe("figures", () => {
  it("summarises each figure by its median and each ratio by the median of the ratios within runs", () => {
    const runs = [
      { "baseline.post_loop": 10_000, "backlog.rate": 2_000 },
      { "baseline.post_loop": 4_000, "backlog.rate": 2_400 },
      { "baseline.post_loop": 8_000, "backlog.rate": 2_200 },
    ];
    const summary = summarise(runs, []);
    assert.equal(summary.figures["baseline.post_loop"]?.median, 8_000);
    assert.deepEqual(summary.figures["backlog.rate"]?.runs, [2_000, 2_400, 2_200]);
    const ratio = summary.ratios["backlog.rate/baseline.post_loop"];
    // Within runs: 0.2, 0.6, 0.275; the median of those, not 2,200 / 8,000.
    assert.deepEqual(ratio?.runs, [0.2, 0.6, 0.275]);
    assert.equal(ratio.median, 0.275);
    assert.equal(summary.figures["e2e.p50_ms"], undefined, "figures not measured are absent");
  });

  it("judges the targets: met, missed, or not measured", () => {
    const runs = [
      {
        "baseline.post_loop": 4_000,
        "backlog.rate": 2_400,
        "backlog_fanout.rate": 3_000,
        "e2e.p50_ms": 12,
        "e2e.p99_ms": 200,
      },
      {
        "baseline.post_loop": 4_000,
        "backlog.rate": 2_200,
        "backlog_fanout.rate": 2_900,
        "e2e.p50_ms": 14,
        "e2e.p99_ms": 90,
      },
      {
        "baseline.post_loop": 4_000,
        "backlog.rate": 2_000,
        "backlog_fanout.rate": 2_800,
        "e2e.p50_ms": 18,
        "e2e.p99_ms": 100,
      },
    ];
    const byId = Object.fromEntries(summarise(runs, targets(2000, 500)).targets.map((t) => [t.id, t]));
    assert.equal(byId.deliveries?.met, true, "0.55 and 0.72 of (a) ≥ 0.5");
    assert.equal(byId.e2e?.met, true, "p50 14 ≤ 20, p99 100 ≤ 100");
    assert.deepEqual(byId.e2e.values, { "e2e.p50_ms": 14, "e2e.p99_ms": 100 });
    assert.equal(byId.ingest?.met, null, "no ingest figures: not judged");

    const slow = runs.map((r) => ({ ...r, "backlog.rate": 1_000 }));
    assert.equal(summarise(slow, targets(2000, 500)).targets.find((t) => t.id === "deliveries")?.met, false);
  });
});
