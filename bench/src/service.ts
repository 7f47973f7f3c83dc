// httpqueue as users start it: `node apps/server/dist/main.js` with settings
// in the environment, in a process of its own.
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { createConnection } from "node:net";
import { request } from "undici";
import { freePort } from "@httpqueue/testkit";
import { sleep } from "./clock.js";

/** The built server (the package's main): resolving it runs nothing. */
export const SERVER_MAIN = createRequire(import.meta.url).resolve("@httpqueue/server");

export interface ServiceOptions {
  databaseUrl: string;
  logLevel: "warn" | "info";
  /** WORKER_CONCURRENCY. */
  concurrency: number;
  /** More settings, e.g. DATABASE_POOL_SIZE. */
  env?: Record<string, string>;
  /** Write a CPU profile (node --cpu-prof) into this directory when the server exits. */
  cpuProfileDir?: string | undefined;
}

export interface Service {
  pid: number;
  /** host:port of the gRPC API. */
  address: string;
  /** The last lines the server wrote (stdout and stderr), for error reports. */
  output(): string;
  /** SIGTERM, then waits for the exit (a graceful stop: running deliveries finish). */
  stop(): Promise<void>;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      resolve(false);
    });
  });
}

/** Servers still running, so that an interrupted run can end them. */
const live = new Set<ChildProcess>();

/** SIGKILLs every server still running (an interrupted run). */
export function killServices(): void {
  for (const child of live) child.kill("SIGKILL");
}

const OUTPUT_TAIL_BYTES = 16 * 1024;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * Starts the server and waits until /readyz says it is ready and the gRPC
 * port accepts connections. The ports are
 * chosen here rather than left to GRPC_PORT=0: at LOG_LEVEL=warn the server
 * does not log the line that says where it listens.
 */
export async function startService(options: ServiceOptions): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (err) {
      // Another program took a port between our check and the server's bind: new ports.
      if (!(err instanceof PortTakenError) || attempt === 3) throw err;
    }
  }
}

class PortTakenError extends Error {
  override name = "PortTakenError";
}

async function startOnce(options: ServiceOptions): Promise<Service> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    DATABASE_URL: options.databaseUrl,
    GRPC_PORT: String(grpcPort),
    HTTP_PORT: String(httpPort),
    LOG_LEVEL: options.logLevel,
    WORKER_CONCURRENCY: String(options.concurrency),
    // The receiver is on loopback: allow it should the server refuse private destinations.
    ALLOW_PRIVATE_DESTINATIONS: "true",
    SHUTDOWN_TIMEOUT: "5s",
    ...options.env,
  };
  const args = options.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
  const child = spawn(process.execPath, [...args, SERVER_MAIN], { env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  // Drained as a log collector would, keeping only the tail.
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exitCode: number | string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on("exit", (code, signal) => {
      exitCode = code ?? signal ?? "unknown";
      live.delete(child);
      resolve();
    });
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exitCode !== undefined) {
      const message = `the server exited (${exitCode}) while starting:\n${tail}`;
      throw tail.includes("EADDRINUSE") ? new PortTakenError(message) : new Error(message);
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the server was not ready within ${START_TIMEOUT_MS / 1000}s:\n${tail}`);
    }
    try {
      const res = await request(`http://127.0.0.1:${httpPort}/readyz`);
      await res.body.dump();
      // Ready can come a moment before the gRPC port is bound.
      if (res.statusCode === 200 && (await accepts(grpcPort))) break;
    } catch {
      // Not listening yet.
    }
    await sleep(25);
  }

  return {
    pid: child.pid ?? 0,
    address: `127.0.0.1:${grpcPort}`,
    output: () => tail,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
