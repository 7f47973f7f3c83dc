// What a run costs: CPU time of processes (from /proc, Linux only) and the
// database's transaction counters (pg_stat_database).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type postgres from "postgres";

/** Clock ticks per second of /proc times (USER_HZ); 100 unless getconf says otherwise. */
const TICKS_PER_SECOND = (() => {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** User plus system CPU time of a process (all its threads), in ms; undefined once it is gone. */
export function cpuTimeMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count from the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** Busy and total time of all CPUs since boot, in ms. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0); // idle + iowait
  return { busy: ((total - idle) * 1000) / TICKS_PER_SECOND, total: (total * 1000) / TICKS_PER_SECOND };
}

/** Counters of one database, as pg_stat_database has them. */
export interface DatabaseCounters {
  /** Transactions committed, read-only ones included. */
  commits: number;
  rollbacks: number;
  inserted: number;
  updated: number;
  deleted: number;
}

/**
 * The database's counters. Other backends report theirs at most once a second
 * while busy (PostgreSQL 15), so read them while the load still runs: both
 * ends of a window then lag by the same amount.
 */
export async function databaseCounters(sql: postgres.Sql, database: string): Promise<DatabaseCounters> {
  const [row] = await sql<{ commits: string; rollbacks: string; inserted: string; updated: string; deleted: string }[]>`
    select xact_commit as commits, xact_rollback as rollbacks,
      tup_inserted as inserted, tup_updated as updated, tup_deleted as deleted
    from pg_stat_database where datname = ${database}`;
  if (!row) throw new Error(`no statistics for database ${database}`);
  return {
    commits: Number(row.commits),
    rollbacks: Number(row.rollbacks),
    inserted: Number(row.inserted),
    updated: Number(row.updated),
    deleted: Number(row.deleted),
  };
}

/** The server processes (backends) connected to `database`, but those of the harness (by application_name). */
export async function backendPids(sql: postgres.Sql, database: string, exceptApplication: string): Promise<number[]> {
  const rows = await sql<{ pid: number }[]>`
    select pid from pg_stat_activity
    where datname = ${database} and application_name <> ${exceptApplication} and backend_type = 'client backend'`;
  return rows.map((r) => r.pid);
}

export interface CpuSnapshot {
  at: number;
  /** ms of CPU per watched pid. */
  processes: Map<number, number>;
  machine: { busy: number; total: number };
}

export function snapshotCpu(pids: Iterable<number>, at: number): CpuSnapshot {
  const processes = new Map<number, number>();
  for (const pid of pids) {
    const ms = cpuTimeMs(pid);
    if (ms !== undefined) processes.set(pid, ms);
  }
  return { at, processes, machine: machineCpuMs() };
}

/** CPU ms used by `pids` between two snapshots (a pid absent from the first counts from zero). */
export function cpuBetween(start: CpuSnapshot, end: CpuSnapshot, pids: Iterable<number>): number {
  let sum = 0;
  for (const pid of pids) {
    const after = end.processes.get(pid);
    if (after === undefined) continue;
    sum += after - (start.processes.get(pid) ?? 0);
  }
  return sum;
}

/** Fraction of all CPUs busy between two snapshots (1 = every core busy). */
export function machineBusy(start: CpuSnapshot, end: CpuSnapshot): number {
  const total = end.machine.total - start.machine.total;
  return total > 0 ? (end.machine.busy - start.machine.busy) / total : NaN;
}
