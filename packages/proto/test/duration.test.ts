import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../src/index.js";

describe("parseDuration", () => {
  it("reads a number and a unit as milliseconds", () => {
    const cases: [string, number][] = [
      ["250ms", 250],
      ["5s", 5000],
      ["1.5s", 1500],
      ["2m", 120_000],
      ["1h", 3_600_000],
      ["24h", 86_400_000],
      ["5d", 432_000_000],
      ["0.5d", 43_200_000],
      ["0s", 0],
      ["0", 0],
      [" 10s ", 10_000],
      ["007s", 7000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
  });

  it("refuses anything else", () => {
    for (const text of [
      "",
      " ",
      "10",
      "1.5",
      "s",
      "-1s",
      "+1s",
      "1 s",
      ".5s",
      "1.s",
      "1e3ms",
      "1S",
      "1w",
      "1h30m",
      "5 d",
      "Infinitys",
      "1sx",
    ]) {
      assert.equal(parseDuration(text), undefined, JSON.stringify(text));
    }
  });

  it("accepts everything the server's settings were written with", () => {
    for (const text of ["5s,30s,2m,10m,30m,1h,2h,4h,8h".split(","), "1h", "5d", "50ms", "100ms", "8s", "30s"].flat()) {
      assert.notEqual(parseDuration(text), undefined, text);
    }
  });
});
