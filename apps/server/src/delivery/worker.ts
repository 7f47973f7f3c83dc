import { EventEmitter } from "node:events";
import {
  parseCronItems,
  run,
  type ParsedCronItem,
  type Runner,
  type TaskList,
  type WorkerEvents,
  type WorkerPool,
} from "graphile-worker";
import type postgres from "postgres";
import { connect } from "../db/client.js";
import { RETENTION_TASK } from "../db/jobs.js";
import { queueRetentionSweep } from "../db/retention.js";
import { LIVENESS_PREFIX, poolsWithoutSession, releaseDeadPools } from "../db/liveness.js";
import { queueOverdueWebhooks } from "../db/runners.js";
import { isDatabaseUnavailable } from "../errors.js";
import { graphileLogger, type Logger } from "../observability/logger.js";

export interface WorkerOptions {
  databaseUrl: string;
  concurrency: number;
  pollIntervalMs: number;
  /** How long a graceful stop waits for running jobs before aborting them. */
  shutdownTimeoutMs: number;
  taskList: TaskList;
  logger: Logger;
  /** Told whenever the worker starts running or stops (and why), for the health checks. */
  onStatus?: (status: WorkerStatus) => void;
  /** Told of each graphile-worker pool as it is created (the first, and each replacement). */
  onPool?: (pool: WorkerPool) => void;
  /** Told when a pool starts shutting down (asked to, or on its own): its running jobs should wind down. */
  onPoolStopping?: (poolId: string) => void;
  /** Told how many webhooks each reconciliation queued a job for (see RECONCILE). */
  onReconciled?: (webhooks: number) => void;
  /** How often to look for overdue deliveries without a job, and how overdue they must be; tests shorten them. */
  reconcile?: { intervalMs: number; overdueSeconds: number };
  /**
   * Retention's sweep (the task RETENTION_TASK), queued by graphile-worker's
   * cron once a minute, one job across all servers; with `intervalMs` (tests)
   * each server queues it at that interval instead. Undefined: no sweep.
   */
  retention?: { intervalMs?: number };
}

export type WorkerStatus = { running: true } | { running: false; reason: string };

export interface Worker {
  /** Finishes running jobs (up to the shutdown timeout), returns the rest to the queue. */
  stop(): Promise<void>;
  /**
   * Resolves once stop() is done; rejects when the worker died and cannot be
   * started again (the process should exit: a restart may help where we cannot).
   */
  readonly done: Promise<void>;
}

/** How often a pool's session is used, which also reconnects it after a database restart. */
const HEARTBEAT_MS = 1_000;
const SWEEP_INTERVAL_MS = 5_000;
/**
 * Every so often, webhooks with deliveries overdue by `overdueSeconds` that no
 * server delivers to get a job: a safety net under the jobs statements queue.
 */
const RECONCILE = { intervalMs: 60_000, overdueSeconds: 60 } as const;
/** Waits between attempts to start a worker again: doubling from the first to the last. */
const RESTART_DELAY_MS = { first: 500, max: 15_000 } as const;
/** Failed starts in a row, with the database answering, after which the worker gives up. */
const MAX_FAILED_STARTS = 8;
/** How long past the shutdown timeout a pool that stopped on its own may take to end. */
const ABANDON_GRACE_MS = 10_000;

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/** One graphile-worker pool with its liveness session. */
interface Pool {
  id: string;
  runner: Runner;
  /** The pool's liveness session (also used for sweeps). */
  session: postgres.Sql;
  readonly closed: boolean;
  /** Resolves with why, once the pool shuts down without being asked to. */
  failing: Promise<string>;
  /** Asks the pool to stop (finishing running jobs); resolves when it has. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs the graphile-worker pool that executes fan-out and delivery jobs, and
 * keeps it running: graphile-worker stops its pool for good when the
 * database goes away at the wrong moment (a restart, a failover), so a pool
 * that stops without being asked to is replaced by a new one, after a delay
 * that doubles while starting fails (the database may still be down). Jobs
 * the old pool held are handed back at once. Only when starting fails again
 * and again with the database answering does `done` reject.
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
  const report = options.onStatus ?? (() => undefined);
  let pool = await startPool(options);
  report({ running: true });
  let stopRequested = false;
  // A function, so that TypeScript does not take it for false after each await.
  const stopping = () => stopRequested;
  let wake: (() => void) | undefined;

  const sweeper = createSweeper(logger);
  const sweep = () =>
    (pool.closed ? Promise.resolve() : sweeper(pool.session)).catch((err: unknown) => {
      logger.warn({ err }, "could not check for jobs locked by dead workers; will try again");
    });
  await sweep();
  const timer = setInterval(() => void sweep(), SWEEP_INTERVAL_MS);
  timer.unref();
  const { intervalMs: reconcileIntervalMs, overdueSeconds } = options.reconcile ?? RECONCILE;
  const reconcile = () =>
    (pool.closed ? Promise.resolve(0) : queueOverdueWebhooks(pool.session, overdueSeconds)).then(
      (webhooks) => {
        options.onReconciled?.(webhooks);
        if (webhooks > 0) logger.warn({ webhooks }, "queued jobs for webhooks with overdue deliveries and no job");
      },
      (err: unknown) => {
        logger.warn({ err }, "could not look for overdue deliveries; will try again");
      },
    );
  await reconcile();
  const reconciler = setInterval(() => void reconcile(), reconcileIntervalMs);
  reconciler.unref();
  const retentionIntervalMs = options.retention?.intervalMs;
  const retention =
    retentionIntervalMs === undefined
      ? undefined
      : setInterval(() => {
          if (pool.closed) return;
          queueRetentionSweep(pool.session).catch((err: unknown) => {
            logger.warn({ err }, "could not queue retention's sweep; will try again");
          });
        }, retentionIntervalMs);
  retention?.unref();

  /** Sleeps `ms`, or less if stop() is called meanwhile. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  /**
   * A pool that stopped on its own is left to finish its running jobs (up to
   * the shutdown timeout) while its successor already works; its session
   * stays open meanwhile, so that no sweep takes it for dead. Then its jobs
   * are handed back. A pool that never ends (graphile-worker may not settle
   * it) is left behind.
   */
  const retire = async (old: Pool, settled: Promise<unknown>) => {
    const ended = await Promise.race([settled.then(() => true), sleep(options.shutdownTimeoutMs + ABANDON_GRACE_MS)]);
    if (!ended) logger.error({ poolId: old.id }, "the stopped worker pool did not end; leaving it behind");
    await old.close();
    if (pool.closed) return; // the sweeps will, once a pool runs again
    await releaseDeadPools(pool.session, [old.id]).catch((err: unknown) => {
      logger.warn({ err }, "could not hand back what the stopped worker held; the sweeps will");
    });
  };
  const retiring: Promise<void>[] = [];

  const supervise = async (): Promise<void> => {
    for (;;) {
      const settled = pool.runner.promise.then(
        () => undefined,
        (err: unknown) => err ?? new Error("the worker pool failed"),
      );
      const ended = await Promise.race([settled, pool.failing.then((reason) => new Error(reason))]);
      if (stopping()) {
        await pool.stop();
        await pool.close();
        return;
      }
      report({ running: false, reason: "the delivery worker stopped; restarting it" });
      logger.error({ err: ended, poolId: pool.id }, "the delivery worker stopped unexpectedly; restarting it");
      const old = pool;
      let failures = 0;
      for (;;) {
        await pause(Math.min(RESTART_DELAY_MS.first * 2 ** failures, RESTART_DELAY_MS.max));
        if (stopping()) break;
        try {
          pool = await startPool(options);
          break;
        } catch (err) {
          failures++;
          logger.warn({ err, failures }, "could not start the delivery worker; will try again");
          if (failures >= MAX_FAILED_STARTS && !isDatabaseUnavailable(err)) {
            report({ running: false, reason: "the delivery worker cannot be started" });
            await retire(old, settled);
            throw err;
          }
        }
      }
      retiring.push(retire(old, settled));
      if (stopping()) {
        if (pool !== old) await pool.stop();
        await pool.close();
        return;
      }
      report({ running: true });
      logger.info({ poolId: pool.id }, "the delivery worker runs again");
    }
  };
  const done = supervise().finally(async () => {
    clearInterval(timer);
    clearInterval(reconciler);
    clearInterval(retention);
    await Promise.all(retiring);
  });
  // Observed by the caller through `done`; this keeps an early rejection from counting as unhandled.
  done.catch(() => undefined);

  let stopped: Promise<void> | undefined;
  return {
    done,
    stop() {
      stopped ??= (async () => {
        stopRequested = true;
        wake?.();
        await pool.stop();
        await done;
      })();
      return stopped;
    },
  };
}

/**
 * Retention's sweep once a minute (graphile-worker's cron queues it once
 * across all servers, and none is made up for minutes the servers were
 * down), under a job key: one waiting at most, and a sweep that failed is
 * simply replaced by the next (one attempt each).
 */
function cronItems(options: WorkerOptions): ParsedCronItem[] {
  if (!options.retention || options.retention.intervalMs !== undefined) return [];
  return parseCronItems([
    {
      task: RETENTION_TASK,
      match: "* * * * *",
      identifier: RETENTION_TASK,
      options: { backfillPeriod: 0, maxAttempts: 1, jobKey: RETENTION_TASK, jobKeyMode: "replace" },
    },
  ]);
}

/** Starts a graphile-worker pool and opens its liveness session. */
async function startPool(options: WorkerOptions): Promise<Pool> {
  const { logger } = options;
  const events: WorkerEvents = new EventEmitter();
  let poolId: string | undefined;
  events.on("pool:create", ({ workerPool }) => {
    poolId = workerPool.id;
    options.onPool?.(workerPool);
  });
  // A pool shuts down on its own when it cannot complete or fail jobs (the
  // database went away): from that moment it takes no job.
  let stopRequested = false;
  let shuttingDown: ((reason: string) => void) | undefined;
  const shutdownStarted = new Promise<string>((resolve) => (shuttingDown = resolve));
  events.on("pool:gracefulShutdown", ({ message, workerPool }) => {
    options.onPoolStopping?.(workerPool.id);
    if (!stopRequested) shuttingDown?.(message);
  });

  const runner: Runner = await run({
    taskList: options.taskList,
    // Given, so that no crontab file is looked for either.
    parsedCronItems: cronItems(options),
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
  const id = poolId;
  if (!id) {
    await runner.stop();
    throw new Error("graphile-worker created no pool");
  }
  const session = connect(options.databaseUrl, {
    max: 1,
    connect_timeout: 10,
    // Kept open for good: postgres.js would otherwise recycle it after 30 to 60 minutes.
    max_lifetime: null,
    idle_timeout: 0,
    onnotice: () => undefined,
    connection: { application_name: LIVENESS_PREFIX + id },
  });
  const heartbeat = setInterval(() => {
    session`select 1`.catch(() => undefined);
  }, HEARTBEAT_MS);
  heartbeat.unref();
  logger.debug({ poolId: id, concurrency: options.concurrency }, "worker started");
  let closed = false;
  return {
    id,
    runner,
    session,
    failing: shutdownStarted,
    async stop() {
      stopRequested = true;
      // runner.promise settles once the jobs have ended; runner.stop()'s own
      // promise only once graphile-worker's connection pool has ended too. Both
      // are awaited, so that no connection outlives the stop.
      const stopped = runner.stop().catch(() => undefined);
      await Promise.race([
        Promise.all([runner.promise.catch(() => undefined), stopped]),
        sleep(options.shutdownTimeoutMs + ABANDON_GRACE_MS),
      ]);
    },
    get closed() {
      return closed;
    },
    async close() {
      closed = true;
      clearInterval(heartbeat);
      await session.end({ timeout: 5 });
    },
  };
}

/**
 * One server's sweeps. A pool holding our jobs or webhooks without a live
 * session is a suspect (a pool that just started announces itself a moment
 * after it locks its first jobs; one whose session dropped reconnects within
 * a second); one that is still a suspect at the next sweep is taken for dead,
 * and what it held is handed back, if it has still not announced itself.
 */
function createSweeper(logger: Logger): (sql: postgres.Sql) => Promise<void> {
  let suspects = new Set<string>();

  return async (sql) => {
    const missing = new Set(await poolsWithoutSession(sql));
    const dead = [...missing].filter((pool) => suspects.has(pool));
    suspects = missing;
    if (dead.length === 0) return;
    const released = await releaseDeadPools(sql, dead);
    if (released.jobs > 0 || released.webhooks > 0) {
      logger.warn(released, "unlocked jobs held by workers that are gone");
    }
  };
}
