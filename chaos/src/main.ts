// `pnpm chaos [scenario...]`: the built server under faults. Prints a table
// of figures per scenario; exits 1 when a promise was broken.
import { parseOptions, UsageError, USAGE } from "./options.js";
import { newSeed } from "./random.js";
import { renderResult } from "./report.js";
import { releaseCurrent, runScenario } from "./runner.js";
import { SCENARIOS } from "./scenarios/index.js";
import { killAllServers } from "./servers.js";

const say = (line: string) => process.stderr.write(`${line}\n`);

let options;
try {
  options = parseOptions(
    process.argv.slice(2),
    SCENARIOS.map((s) => s.name),
  );
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (options === "help") {
  process.stdout.write(USAGE);
  process.exit(0);
}

// Interrupted: no server, database or PostgreSQL of ours is left behind.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping what the scenario started`);
    killAllServers();
    void releaseCurrent().finally(() => process.exit(130));
  });
}

const names = options.names.length > 0 ? options.names : SCENARIOS.map((s) => s.name);
const seed = options.seed ?? newSeed();
let broken = 0;
for (const name of names) {
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) continue;
  say(`${name}: ${scenario.title} (seed ${seed}${options.smoke ? ", smoke" : ""})`);
  const result = await runScenario(scenario, { smoke: options.smoke, seed, size: options.size, say });
  process.stdout.write(`\n${renderResult(result)}\n`);
  if (result.broken.length > 0) broken++;
}
say(broken === 0 ? "every promise held" : `${broken} of ${names.length} scenarios broke a promise`);
// Explicitly: a scenario that overran may have left a timer behind.
process.exit(broken === 0 ? 0 : 1);
