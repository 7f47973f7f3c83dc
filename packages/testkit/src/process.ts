import { spawn, type ChildProcess, type ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";

export interface ServerProcess {
  child: ChildProcess;
  /** host:port, once it listens. */
  address: string;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process ends. */
  exited: Promise<number | string>;
}

/**
 * Only PATH comes from the test's own environment; the rest is explicit, but
 * for HTTP_PORT: a free port unless the test names one, so that servers
 * started by tests running in parallel do not all claim the default port.
 */
function start(
  main: string,
  env: Record<string, string>,
): {
  child: ChildProcessByStdio<null, Readable, Readable>;
  output: () => string;
} {
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH, HTTP_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

function exitOf(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      resolve(code ?? signal ?? "unknown");
    });
  });
}

/**
 * Starts the built server (`main` is its dist/main.js) as users start it and
 * waits until it logs where it listens.
 */
export async function spawnServer(
  main: string,
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ServerProcess> {
  const { child, output } = start(main, env);
  const exited = exitOf(child);
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`server did not start:\n${output()}`));
    }, timeoutMs);
    const onData = () => {
      const match = /httpqueue listening on (\S+?)"/.exec(output());
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        resolve(match[1]);
      }
    };
    child.stdout.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${output()}`));
    });
  });
  return { child, address, output, exited };
}

/** Runs `main` expecting it to stop by itself; returns its exit code and output. */
export async function runToExit(
  main: string,
  env: Record<string, string>,
): Promise<{ code: number | string; output: string }> {
  const { child, output } = start(main, env);
  const code = await exitOf(child);
  return { code, output: output() };
}

/**
 * Stops a server the way an orchestrator does: SIGTERM, then SIGKILL if it
 * has not exited within `graceMs`. Resolves with the exit code once it ended
 * on SIGTERM; rejects (with its output) when it had to be killed, so that a
 * shutdown that hangs fails the test instead of holding it forever.
 */
export async function terminate(server: ServerProcess, graceMs = 30_000): Promise<number | string> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return server.exited;
  server.child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      resolve(undefined);
    }, graceMs);
  });
  const code = await Promise.race([server.exited, late]);
  clearTimeout(timer);
  if (code !== undefined) return code;
  server.child.kill("SIGKILL");
  await server.exited;
  throw new Error(`the server did not exit within ${graceMs} ms of SIGTERM; killed:\n${server.output().slice(-6000)}`);
}
