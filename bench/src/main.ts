// `pnpm bench`: measures httpqueue and, in the same run, the baselines that
// bound it; prints a table and writes results/<timestamp>.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { databaseAdmin } from "./database.js";
import { parseOptions, UsageError, USAGE } from "./options.js";
import { renderTable } from "./report.js";
import { runBench } from "./runner.js";
import { killServices } from "./service.js";

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);

let options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (options === "help") {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (options.runs < 3) say(`${options.runs} run(s): the figures are not medians of at least 3 runs`);

const admin = databaseAdmin(options.databaseUrl);
// Interrupted: no server or database is left behind.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping the servers and dropping the databases`);
    killServices();
    void admin
      .dropAll()
      .finally(() => admin.close())
      .finally(() => process.exit(130));
  });
}

try {
  const results = await runBench(options, admin, say);
  mkdirSync(options.outDir, { recursive: true });
  const file = join(options.outDir, `${results.startedAt.replaceAll(":", "-")}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${renderTable(results, options)}\n`);
  say(`${results.durationSeconds}s; results in ${file}`);
} catch (err) {
  say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  killServices();
  process.exitCode = 1;
} finally {
  await admin.dropAll();
  await admin.close();
}
