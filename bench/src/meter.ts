// What a scenario costs between two moments: CPU of the server, of
// PostgreSQL's backends, of the receiver and of the load (from /proc), and the
// database's commits (from pg_stat_database).
import { now, sleep } from "./clock.js";
import { BENCH_APPLICATION_NAME } from "./database.js";
import {
  backendPids,
  cpuBetween,
  databaseCounters,
  machineBusy,
  snapshotCpu,
  type CpuSnapshot,
  type DatabaseCounters,
} from "./probes.js";
import type { BenchReceiver } from "./receiver.js";
import type { Running } from "./scenarios.js";

/** The cost of what happened between two marks. */
export interface Cost {
  seconds: number;
  /** CPU ms of the server process. */
  serverCpuMs: number;
  /** CPU ms of the PostgreSQL backends connected to the benchmark's database. */
  postgresCpuMs: number;
  receiverCpuMs: number;
  /** CPU ms of this process (the load). */
  loadCpuMs: number;
  /** Fraction of all cores busy (whole machine). */
  machineBusy: number;
  /** Transactions committed in the database (read-only ones included). */
  commits: number;
}

export interface Mark {
  cpu: CpuSnapshot;
  counters: DatabaseCounters;
  backends: number[];
}

/** Samples CPU and the database's counters; `cost(a, b)` is what happened in between. */
export function meter(running: Running, receiver: BenchReceiver) {
  const fixed = [running.service.pid, receiver.pid, process.pid];
  let backends: number[] = [];
  return {
    /** CPU of the server, receiver, load and the backends known so far. */
    cpu: (at = now()) => snapshotCpu([...fixed, ...backends], at),
    async mark(): Promise<Mark> {
      backends = await backendPids(running.db.sql, running.db.name, BENCH_APPLICATION_NAME);
      const cpu = snapshotCpu([...fixed, ...backends], now());
      const counters = await databaseCounters(running.db.sql, running.db.name);
      return { cpu, counters, backends };
    },
    /** A backend that connected after `a` counts in full: all its CPU is in between. */
    cost(a: Mark, b: Mark, counters: DatabaseCounters = b.counters): Cost {
      const pg = new Set([...a.backends, ...b.backends]);
      return {
        seconds: (b.cpu.at - a.cpu.at) / 1000,
        serverCpuMs: cpuBetween(a.cpu, b.cpu, [running.service.pid]),
        postgresCpuMs: cpuBetween(a.cpu, b.cpu, pg),
        receiverCpuMs: cpuBetween(a.cpu, b.cpu, [receiver.pid]),
        loadCpuMs: cpuBetween(a.cpu, b.cpu, [process.pid]),
        machineBusy: machineBusy(a.cpu, b.cpu),
        commits: counters.commits - a.counters.commits,
      };
    },
  };
}

/** Per-unit costs: CPU ms and commits per event or delivery. */
export interface UnitCosts {
  serverCpuMs: number;
  postgresCpuMs: number;
  receiverCpuMs: number;
  loadCpuMs: number;
  commits: number;
  machineBusy: number;
}

export function perUnit(cost: Cost, units: number): UnitCosts {
  const n = Math.max(1, units);
  return {
    serverCpuMs: cost.serverCpuMs / n,
    postgresCpuMs: cost.postgresCpuMs / n,
    receiverCpuMs: cost.receiverCpuMs / n,
    loadCpuMs: cost.loadCpuMs / n,
    commits: cost.commits / n,
    machineBusy: cost.machineBusy,
  };
}

/** Marks at `from` and at `to`, while the load runs. */
export async function markAt(m: ReturnType<typeof meter>, from: number, to: number): Promise<[Mark, Mark]> {
  await sleep(from - now());
  const a = await m.mark();
  await sleep(to - now());
  const b = await m.mark();
  return [a, b];
}
