import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { parseOptions, UsageError } from "../src/options.js";

const KNOWN = ["kill", "postgres", "receiver", "two-servers", "hostile"];
const MAIN = fileURLToPath(new URL("../src/main.ts", import.meta.url));

describe("pnpm chaos options", () => {
  it("takes scenario names and options, in any order", () => {
    assert.deepEqual(parseOptions(["hostile", "--seed", "42", "kill", "--smoke", "--size=10"], KNOWN), {
      names: ["hostile", "kill"],
      smoke: true,
      seed: 42,
      size: 10,
    });
    assert.deepEqual(parseOptions([], KNOWN), { names: [], smoke: false, seed: undefined, size: undefined });
    assert.equal(parseOptions(["--help"], KNOWN), "help");
  });

  it("refuses unknown scenarios and options, and sizes that are not whole numbers", () => {
    assert.throws(() => parseOptions(["nope"], KNOWN), UsageError);
    assert.throws(() => parseOptions(["--fast"], KNOWN), UsageError);
    assert.throws(() => parseOptions(["--seed", "x"], KNOWN), UsageError);
    assert.throws(() => parseOptions(["--size", "0"], KNOWN), UsageError);
  });

  it("exits 2 with the usage for an unknown scenario, 0 for --help", () => {
    const bad = spawnSync(process.execPath, ["--import", "tsx", MAIN, "nope"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown scenario "nope"/);
    assert.match(bad.stderr, /usage: pnpm chaos/);
    const help = spawnSync(process.execPath, ["--import", "tsx", MAIN, "--help"], { encoding: "utf8" });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /two-servers/);
  });
});
