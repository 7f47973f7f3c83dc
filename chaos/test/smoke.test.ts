import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderResult } from "../src/report.js";
import { runScenario } from "../src/runner.js";
import { SCENARIOS } from "../src/scenarios/index.js";

// Each scenario's short variant, against the built server and SDK, one after
// another: the promises (nothing lost, no INTERNAL, the server up…) are
// asserted, never a figure's size or a time.

const SEED = 20_261_130;

/** The figure's value, which must have been printed. */
function figure(result: { figures: [string, string][] }, label: string): string {
  const found = result.figures.find(([l]) => l.startsWith(label));
  assert.ok(found, `the table has "${label}"`);
  return found[1];
}

describe("the chaos suite, short variants", { timeout: 600_000 }, () => {
  const expected: Record<string, string[]> = {
    kill: [
      "acknowledged events lost",
      "deliveries received more than once",
      "kill 1: restart → ready / → first delivery",
    ],
    postgres: ["server process", "push attempts failed, by code", "deliveries resumed after the start"],
    receiver: ["requests received, by the receiver's answer", "SUCCEEDED within the TTL"],
    "two-servers": ["attempts made by a, until killed", "attempts made by b", "delivered out of order within a key"],
    hostile: ["status codes", "a normal delivery afterwards"],
  };

  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: every promise holds`, async () => {
      const result = await runScenario(scenario, { smoke: true, seed: SEED });
      assert.deepEqual(result.broken, [], renderResult(result));
      for (const label of expected[scenario.name] ?? []) figure(result, label);
      if (scenario.name !== "hostile" && scenario.name !== "receiver") {
        assert.equal(figure(result, "acknowledged events lost"), "0");
      }
    });
  }
});
