#!/usr/bin/env node
// Entry point of `npm start` and `npm test` (and their pnpm twins) on a checkout
// that may have nothing but Node.js and npm: fetches the pnpm version that
// package.json names (through npx) when it is not installed, installs the
// workspace from the lock file, builds, then starts the server or runs the
// tests. Uses only Node's own modules: nothing else exists before the install.
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const pnpmVersion = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager.split("@")[1];
const DEFAULT_TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres";

const say = (message) => process.stderr.write(`[httpqueue] ${message}\n`);

/** How to run pnpm: the installed one when it is the right version, else through npx. */
function pnpmCommand() {
  const installed = spawnSync("pnpm", ["--version"], { encoding: "utf8", shell: process.platform === "win32" });
  if (installed.status === 0 && installed.stdout.trim() === pnpmVersion) return ["pnpm", []];
  return ["npx", ["--yes", `pnpm@${pnpmVersion}`]];
}

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", env, shell: process.platform === "win32" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** Runs a long-lived command; a SIGTERM to us reaches it (a Ctrl-C reaches it from the terminal). */
function runForwardingSignals(command, args, env) {
  const child = spawn(command, args, { cwd: root, stdio: "inherit", env });
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port, timeout: 1000 });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Whether PostgreSQL at `url` lets us in and create databases (postgres.js from the server's dependencies). */
async function isUsableAdminUrl(url) {
  const { hostname, port } = new URL(url);
  if (!(await canConnect(hostname, Number(port || 5432)))) return false;
  const fromServer = createRequire(join(root, "apps/server/package.json"));
  const { default: postgres } = await import(pathToFileURL(fromServer.resolve("postgres")).href);
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const [row] = await sql`select rolcreatedb or rolsuper as ok from pg_roles where rolname = current_user`;
    return Boolean(row?.ok);
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

const [pnpm, pnpmArgs] = pnpmCommand();
const task = process.argv[2];
if (task !== "start" && task !== "test") {
  say("usage: node scripts/run.mjs start|test");
  process.exit(2);
}

run(pnpm, [...pnpmArgs, "install", "--frozen-lockfile", "--prefer-offline"]);
run(pnpm, [...pnpmArgs, "exec", "turbo", "run", "build", "--output-logs=errors-only"]);

if (task === "start") {
  process.exit(await runForwardingSignals(process.execPath, [join(root, "apps/server/dist/main.js")], process.env));
}

// Tests need a PostgreSQL that lets them create databases: TEST_DATABASE_URL,
// else the usual local one, else an embedded one for this run only.
const env = { ...process.env };
let embedded;
if (!env.TEST_DATABASE_URL) {
  if (await isUsableAdminUrl(DEFAULT_TEST_DATABASE_URL)) {
    env.TEST_DATABASE_URL = DEFAULT_TEST_DATABASE_URL;
  } else {
    say(`no usable PostgreSQL at ${DEFAULT_TEST_DATABASE_URL}: starting an embedded one for the tests`);
    const { startEmbeddedPostgres } = await import(pathToFileURL(join(root, "apps/server/dist/db/embedded.js")).href);
    const { createLogger } = await import(pathToFileURL(join(root, "apps/server/dist/observability/logger.js")).href);
    const { chmodSync, mkdtempSync, rmSync } = await import("node:fs");
    const dir = mkdtempSync(join(tmpdir(), "httpqueue-test-pg-"));
    chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres" and must get in
    const port = 55000 + Math.floor(Math.random() * 5000);
    embedded = await startEmbeddedPostgres({ dir, port, database: "postgres", logger: createLogger("warn") });
    embedded.cleanup = () => rmSync(dir, { recursive: true, force: true });
    env.TEST_DATABASE_URL = embedded.url;
  }
}
const code = await runForwardingSignals(pnpm, [...pnpmArgs, "exec", "turbo", "run", "test"], env);
if (embedded) {
  await embedded.stop();
  embedded.cleanup();
}
process.exit(code);
