import { EventEmitter } from "node:events";
import { Logger as GraphileLogger, run, type Runner, type TaskList, type WorkerEvents } from "graphile-worker";
import postgres from "postgres";
import type { Logger } from "../observability/logger.js";
import { DELIVER_TASK, FANOUT_TASK } from "./task-names.js";

export interface WorkerOptions {
  databaseUrl: string;
  concurrency: number;
  pollIntervalMs: number;
  /** How long a graceful stop waits for running jobs before aborting them. */
  shutdownTimeoutMs: number;
  taskList: TaskList;
  logger: Logger;
}

export interface Worker {
  /** Finishes running jobs (up to the shutdown timeout), returns the rest to the queue. */
  stop(): Promise<void>;
  /** Settles when the worker stops; rejects if it dies. */
  readonly done: Promise<void>;
}

/** Sessions of live worker pools carry this application_name prefix and their pool id. */
const LIVENESS_PREFIX = "httpqueue-worker:";
const SWEEP_INTERVAL_MS = 10_000;
/** A pool announces itself a moment after it starts; give it that long. */
const SWEEP_GRACE_SECONDS = 5;

/**
 * Runs the graphile-worker pool that executes fan-out and delivery jobs.
 *
 * graphile-worker leaves jobs locked by a worker that died (SIGKILL, OOM, lost
 * machine) for four hours. To hand them back within seconds, every pool keeps
 * a database session named after its pool id, and every server unlocks jobs
 * whose pool has no such session: at start, then every few seconds.
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const { logger } = options;
  const liveness = postgres(options.databaseUrl, { max: 1, connect_timeout: 10, onnotice: () => undefined });
  try {
    await unlockJobsOfDeadPools(liveness, 0, logger);
  } finally {
    await liveness.end({ timeout: 5 });
  }

  const events: WorkerEvents = new EventEmitter();
  let poolId: string | undefined;
  events.on("pool:create", ({ workerPool }) => {
    poolId = workerPool.id;
  });

  const runner: Runner = await run({
    taskList: options.taskList,
    noHandleSignals: true,
    events,
    logger: graphileLogger(logger),
    preset: {
      worker: {
        connectionString: options.databaseUrl,
        concurrentJobs: options.concurrency,
        // Our tasks query through their own pool; this one only fetches and
        // completes jobs, so it rarely opens more than a few connections.
        maxPoolSize: options.concurrency + 2,
        pollInterval: options.pollIntervalMs,
        gracefulShutdownAbortTimeout: options.shutdownTimeoutMs,
        // Batching: fetch jobs in batches and complete them in batches.
        localQueue: { size: options.concurrency * 2 },
        completeJobBatchDelay: 5,
        failJobBatchDelay: 5,
      },
    },
  });
  if (!poolId) throw new Error("graphile-worker created no pool");

  const announced = postgres(options.databaseUrl, {
    max: 1,
    connect_timeout: 10,
    onnotice: () => undefined,
    connection: { application_name: LIVENESS_PREFIX + poolId },
  });
  const sweep = () =>
    unlockJobsOfDeadPools(announced, SWEEP_GRACE_SECONDS, logger).catch((err: unknown) => {
      logger.warn({ err }, "could not check for jobs locked by dead workers; will try again");
    });
  await sweep();
  const timer = setInterval(() => void sweep(), SWEEP_INTERVAL_MS);
  timer.unref();

  let stopping: Promise<void> | undefined;
  const done = runner.promise.finally(() => {
    clearInterval(timer);
    return announced.end({ timeout: 5 });
  });
  logger.debug({ poolId, concurrency: options.concurrency }, "worker started");
  return {
    done,
    stop() {
      stopping ??= runner.stop().then(() => done);
      return stopping;
    },
  };
}

/**
 * Unlocks our jobs held by pools that have no live session and were locked
 * more than `graceSeconds` ago. Returns how many jobs were unlocked.
 */
async function unlockJobsOfDeadPools(sql: postgres.Sql, graceSeconds: number, logger: Logger): Promise<number> {
  const [row] = await sql<{ pools: string[] | null; jobs: number; unlocked: number }[]>`
    with stale as (
      select locked_by, count(*)::int as jobs
      from graphile_worker.jobs
      where locked_by is not null
        and task_identifier in (${FANOUT_TASK}, ${DELIVER_TASK})
        and locked_at < now() - make_interval(secs => ${graceSeconds})
        and locked_by not in (
          select substr(application_name, ${LIVENESS_PREFIX.length + 1})
          from pg_stat_activity
          where application_name like ${LIVENESS_PREFIX + "%"}
        )
      group by locked_by
    ), unlocked as (
      select graphile_worker.force_unlock_workers(array_agg(locked_by)) from stale having count(*) > 0
    )
    select (select array_agg(locked_by) from stale) as pools,
           (select coalesce(sum(jobs), 0) from stale)::int as jobs,
           (select count(*) from unlocked)::int as unlocked
  `;
  if (row && row.jobs > 0) {
    logger.warn({ pools: row.pools, jobs: row.jobs }, "unlocked jobs held by workers that are gone");
  }
  return row?.jobs ?? 0;
}

/** graphile-worker's log lines, through our logger. Its per-job lines go to debug. */
export function graphileLogger(logger: Logger): GraphileLogger {
  const child = logger.child({ component: "graphile-worker" });
  return new GraphileLogger(() => (level, message, meta) => {
    const fields = meta?.error ? { err: meta.error } : {};
    switch (level as string) {
      case "error":
        child.error(fields, message);
        break;
      case "warning":
        child.warn(fields, message);
        break;
      case "info":
        child.debug(fields, message);
        break;
      default:
        child.trace(fields, message);
    }
  });
}
