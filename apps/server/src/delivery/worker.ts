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
/** How often a pool's session is used, which also reconnects it after a database restart. */
const HEARTBEAT_MS = 1_000;
const SWEEP_INTERVAL_MS = 5_000;

/**
 * Runs the graphile-worker pool that executes fan-out and delivery jobs.
 *
 * graphile-worker leaves jobs locked by a worker that died (SIGKILL, OOM, lost
 * machine) for four hours. To hand them back within seconds, every pool keeps
 * a database session named after its pool id (used every second, so that it
 * comes back quickly after the database restarts), and every server unlocks
 * jobs whose pool has had no such session at two sweeps in a row, five
 * seconds apart: a live pool whose session merely dropped has reconnected by
 * the second look.
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const { logger } = options;
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
    // Kept open for good: postgres.js would otherwise recycle it after 30 to 60 minutes.
    max_lifetime: null,
    idle_timeout: 0,
    onnotice: () => undefined,
    connection: { application_name: LIVENESS_PREFIX + poolId },
  });
  const heartbeat = setInterval(() => {
    announced`select 1`.catch(() => undefined);
  }, HEARTBEAT_MS);
  heartbeat.unref();
  const sweeper = createSweeper(announced, logger);
  const sweep = () =>
    sweeper().catch((err: unknown) => {
      logger.warn({ err }, "could not check for jobs locked by dead workers; will try again");
    });
  await sweep();
  const timer = setInterval(() => void sweep(), SWEEP_INTERVAL_MS);
  timer.unref();

  let stopping: Promise<void> | undefined;
  const done = runner.promise.finally(() => {
    clearInterval(timer);
    clearInterval(heartbeat);
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
 * One server's sweeps. A pool holding our jobs without a live session is a
 * suspect (a pool that just started announces itself a moment after it locks
 * its first jobs; one whose session dropped reconnects within a second); one
 * that is still a suspect at the next sweep is taken for dead, and its jobs
 * are unlocked, if it has still not announced itself at that moment.
 */
function createSweeper(sql: postgres.Sql, logger: Logger): () => Promise<void> {
  let suspects = new Set<string>();

  return async () => {
    const rows = await sql<{ pool: string }[]>`
      select distinct locked_by as pool
      from graphile_worker.jobs
      where locked_by is not null
        and task_identifier in (${FANOUT_TASK}, ${DELIVER_TASK})
        and locked_by not in (
          select substr(application_name, ${LIVENESS_PREFIX.length + 1}) from pg_stat_activity
          where application_name like ${LIVENESS_PREFIX + "%"}
        )`;
    const missing = new Set(rows.map((row) => row.pool));
    const dead = [...missing].filter((pool) => suspects.has(pool));
    suspects = missing;
    if (dead.length === 0) return;
    const [result] = await sql<{ pools: string[] | null; jobs: number; unlocked: number }[]>`
      with dead as (
        select unnest(${dead}::text[]) as pool
        except
        select substr(application_name, ${LIVENESS_PREFIX.length + 1}) from pg_stat_activity
        where application_name like ${LIVENESS_PREFIX + "%"}
      ), counted as (
        select count(*)::int as jobs from graphile_worker.jobs where locked_by in (select pool from dead)
      ), unlocked as (
        select graphile_worker.force_unlock_workers(array(select pool from dead)) where exists (select 1 from dead)
      )
      select (select array_agg(pool) from dead) as pools,
             (select jobs from counted) as jobs,
             (select count(*) from unlocked)::int as unlocked`;
    if (result && result.jobs > 0) {
      logger.warn({ pools: result.pools, jobs: result.jobs }, "unlocked jobs held by workers that are gone");
    }
  };
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
