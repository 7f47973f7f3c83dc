import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { median, percentile, percentiles, Samples } from "../src/stats.js";

describe("stats", () => {
  it("takes percentiles by the nearest rank", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile(values, 100), 100);
    assert.equal(percentile(values, 0), 1);
    assert.deepEqual(percentiles(values, [50, 95, 99]), { 50: 50, 95: 95, 99: 99 });
    assert.equal(percentile([7], 99), 7);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  it("takes the median of an odd or even count, leaving NaN out", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([5, NaN, 1, 3]), 3);
    assert.ok(Number.isNaN(median([])));
  });

  it("records samples past its first capacity", () => {
    const samples = new Samples(2);
    for (let i = 0; i < 5; i++) samples.push(i * 1.5);
    assert.equal(samples.length, 5);
    assert.deepEqual([...samples.values()], [0, 1.5, 3, 4.5, 6]);
    assert.equal(samples.get(4), 6);
  });
});
