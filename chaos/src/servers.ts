// httpqueue as users start it: `node apps/server/dist/main.js`, settings in
// the environment, one process per server, killed and restarted at will.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { sleep, within } from "./clock.js";

/** The built server (the package's main); resolving it runs nothing. */
export const SERVER_MAIN = createRequire(import.meta.url).resolve("@httpqueue/server");

export interface ServerOptions {
  /** For reports: "a", "b"… */
  name: string;
  databaseUrl: string;
  grpcPort: number;
  httpPort: number;
  /** More settings, over the defaults below. */
  env?: Record<string, string>;
}

export interface RunningServer {
  name: string;
  pid: number;
  /** host:port of the gRPC API. */
  address: string;
  /** The process's exit (code or signal name), once it has exited. */
  exitStatus(): number | string | undefined;
  /** Resolves with the exit code or signal name. */
  exited: Promise<number | string>;
  /** The last output (stdout and stderr), for failure reports. */
  output(): string;
  /** Lines the server logged at level error (50) or fatal (60) so far. */
  errorLines(): string[];
  /** SIGKILL; resolves once the process has exited, with the time it had. */
  kill(): Promise<number>;
  /** SIGTERM (a graceful stop); SIGKILL if it has not exited within `ms`. */
  stop(ms?: number): Promise<void>;
  /** GET /readyz: its status code, or 0 when it does not answer. */
  readyz(): Promise<number>;
  /** GET /metrics, as text. */
  metrics(): Promise<string>;
}

/** Servers not yet exited, so that an interrupted run leaves none behind. */
const live = new Set<RunningServer>();

/** SIGKILLs every server still running. */
export function killAllServers(): void {
  for (const server of live) process.kill(server.pid, "SIGKILL");
}

const OUTPUT_TAIL = 64 * 1024;
const START_TIMEOUT_MS = 90_000;

/** Starts the server and waits until /readyz answers 200 (or it exits, or START_TIMEOUT_MS passes). */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    DATABASE_URL: options.databaseUrl,
    GRPC_PORT: String(options.grpcPort),
    HTTP_PORT: String(options.httpPort),
    LOG_LEVEL: "warn",
    // The receivers run on loopback, which the server refuses by default.
    ALLOW_PRIVATE_DESTINATIONS: "true",
    SHUTDOWN_TIMEOUT: "5s",
    ...options.env,
  };
  const child = spawn(process.execPath, [SERVER_MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
  if (child.pid === undefined) throw new Error(`server ${options.name} could not be started`);
  const pid = child.pid;
  let tail = "";
  const errors: string[] = [];
  let partial = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    tail = (tail + text).slice(-OUTPUT_TAIL);
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (/^\{"level":(50|60|"error"|"fatal"),/.test(line)) errors.push(line);
  });
  child.stderr.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL);
  });
  let status: number | string | undefined;
  let exitedAt = 0;
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      status = code ?? signal ?? "unknown";
      exitedAt = Date.now();
      live.delete(server);
      resolve(status);
    });
  });
  const http = `http://127.0.0.1:${options.httpPort}`;
  const get = async (path: string) => {
    const res = await fetch(`${http}${path}`, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, text: await res.text() };
  };
  const server: RunningServer = {
    name: options.name,
    pid,
    address: `127.0.0.1:${options.grpcPort}`,
    exitStatus: () => status,
    exited,
    output: () => tail,
    errorLines: () => errors,
    async kill() {
      if (status === undefined) child.kill("SIGKILL");
      await within(`server ${options.name} to exit after SIGKILL`, 10_000, exited);
      return exitedAt;
    },
    async stop(ms = 15_000) {
      if (status !== undefined) return;
      child.kill("SIGTERM");
      try {
        await within(`server ${options.name} to stop`, ms, exited);
      } catch {
        child.kill("SIGKILL");
        await within(`server ${options.name} to exit after SIGKILL`, 10_000, exited);
      }
    },
    readyz: () =>
      get("/readyz").then(
        (r) => r.status,
        () => 0,
      ),
    metrics: () => get("/metrics").then((r) => r.text),
  };
  live.add(server);

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (status !== undefined) throw new Error(`server ${options.name} exited (${status}) while starting:\n${tail}`);
    if ((await server.readyz()) === 200) return server;
    if (Date.now() > deadline) {
      await server.stop(5_000);
      throw new Error(`server ${options.name} was not ready within ${START_TIMEOUT_MS / 1000} s:\n${tail}`);
    }
    await sleep(100);
  }
}

/** Delivery attempts this server made since it started: its httpqueue_delivery_attempt_duration_seconds count. */
export function attemptsIn(metrics: string): number {
  let total = 0;
  for (const line of metrics.split("\n")) {
    if (line.startsWith("httpqueue_delivery_attempt_duration_seconds_count")) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}
