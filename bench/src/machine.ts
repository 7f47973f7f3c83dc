import { execFileSync } from "node:child_process";
import { cpus, release, totalmem } from "node:os";
import type { DatabaseAdmin } from "./database.js";

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: Record<string, string>;
  /** The commit measured, with "-dirty" when the checkout had changes. */
  commit: string | undefined;
}

function gitCommit(): string | undefined {
  try {
    const run = (...args: string[]) => execFileSync("git", args, { encoding: "utf8", stdio: "pipe" }).trim();
    const commit = run("rev-parse", "--short=12", "HEAD");
    return run("status", "--porcelain", "--untracked-files=no") === "" ? commit : `${commit}-dirty`;
  } catch {
    return undefined;
  }
}

export async function describeMachine(admin: DatabaseAdmin): Promise<Machine> {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
    postgres: await admin.serverInfo(),
    commit: gitCommit(),
  };
}
