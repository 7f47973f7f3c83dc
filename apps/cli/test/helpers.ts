import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { createTestDatabase, spawnServer, terminate, type ServerProcess, type TestDatabase } from "@httpqueue/testkit";

/** The built webhookctl, run through its shebang as users run it. */
export const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** The built server of the workspace, started as `node dist/main.js`. */
const SERVER_MAIN = fileURLToPath(import.meta.resolve("@httpqueue/server"));

export interface Server {
  address: string;
  /** The server's database (empty until the server has migrated it). */
  db: TestDatabase;
  process: ServerProcess;
  stop(): Promise<void>;
}

/** A real server on a free port and a database of its own, empty until the server migrates it. */
export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const db: TestDatabase = await createTestDatabase();
  let server: ServerProcess;
  try {
    server = await spawnServer(SERVER_MAIN, {
      DATABASE_URL: db.url,
      // The tests' receivers run on loopback, which deliveries may not reach by default.
      ALLOW_PRIVATE_DESTINATIONS: "true",
      GRPC_PORT: "0",
      LOG_LEVEL: "info",
      RETRY_SCHEDULE: "100ms",
      RETRY_JITTER: "0",
      WORKER_POLL_INTERVAL: "50ms",
      SHUTDOWN_TIMEOUT: "5s",
      ...env,
    });
  } catch (err) {
    await db.drop();
    throw err;
  }
  return {
    address: server.address,
    db,
    process: server,
    async stop() {
      await terminate(server);
      await db.drop();
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs webhookctl with `args`. The environment holds only PATH and `env`, so
 * that the caller's WEBHOOKCTL_* or NO_COLOR settings never leak in.
 */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLI, args, {
      env: { PATH: process.env.PATH, ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Whether util-linux `script` is there to give webhookctl a terminal. */
export const HAS_SCRIPT = spawnSync("script", ["--version"]).status === 0;

/**
 * Runs webhookctl on a pseudo-terminal (through `script`), as someone at a
 * terminal does; returns what it printed, with the terminal's line endings.
 * `args` must not need shell quoting.
 */
export function runInTerminal(args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", [CLI, ...args].join(" "), "/dev/null"], {
      env: { PATH: process.env.PATH, TERM: "xterm", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, stdout: stdout.replace(/\r\n/g, "\n"), stderr: "" });
    });
  });
}

/** Runs webhookctl expecting success; returns stdout. */
export async function ok(args: string[], options?: Parameters<typeof runCli>[1]): Promise<string> {
  const result = await runCli(args, options);
  if (result.code !== 0) {
    throw new Error(`webhookctl ${args.join(" ")} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

/** Runs webhookctl with --json expecting success; returns the parsed stdout. */
export async function okJson<T = Record<string, unknown>>(
  args: string[],
  options?: Parameters<typeof runCli>[1],
): Promise<T> {
  return JSON.parse(await ok([...args, "--json"], options)) as T;
}

/** A loopback port that nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
  return port;
}

/** "3m ago (2026-11-28 12:00:01Z)" and friends. */
export const TIME = /(just now|\d+[smhd] ago|in \d+[smhd]) \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\)/;

/** An ANSI colour sequence. */
export const ANSI = new RegExp(String.raw`\x1b\[\d+m`);

/** `text` in the colour whose ANSI code is `code`, as picocolors writes it. */
export const coloured = (code: number, text: string) => `\x1b[${code}m${text}\x1b[39m`;
