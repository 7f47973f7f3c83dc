import type { JobHelpers, TaskList } from "graphile-worker";
import type { Db } from "../db/client.js";
import { fanOut, webhookOfDelivery } from "../db/deliveries.js";
import { DELIVER_TASK, FANOUT_TASK, RETENTION_TASK, type DeliverPayload } from "../db/jobs.js";
import { rootCause } from "../errors.js";
import type { Metrics } from "../observability/metrics.js";
import { sweepRetention, type RetentionSettings } from "./retention.js";
import { WebhookRunner, type RunnerDeps } from "./runner.js";

export interface TaskDeps extends RunnerDeps {
  db: Db;
  /** Attempts each new delivery may make. */
  maxAttempts: number;
  metrics: RunnerDeps["metrics"] & Pick<Metrics, "retentionDeleted" | "payloadsRemoved">;
  retention: RetentionSettings;
}

export interface Tasks {
  taskList: TaskList;
  /** The worker pool `poolId` stops: its runners start nothing more and hand their webhooks on. */
  drain(poolId: string): void;
}

/**
 * The graphile-worker tasks: fan-out of a pushed event, delivery to a
 * webhook, and retention's sweep. A delivery job for a webhook that a runner of this server already
 * delivers to only tells that runner to look again (its job ends at once):
 * a webhook holds one worker slot, however many jobs name it.
 */
export function createTasks(deps: TaskDeps): Tasks {
  const runners = new Map<string, WebhookRunner>();
  // One listener per pool's abort signal (not one per runner: they would pile up on it).
  const watched = new WeakSet<AbortSignal>();
  const watch = (signal: AbortSignal) => {
    if (watched.has(signal)) return;
    watched.add(signal);
    signal.addEventListener(
      "abort",
      () => {
        for (const runner of runners.values()) runner.abort();
      },
      { once: true },
    );
  };

  const deliver = async (payload: DeliverPayload | { deliveryId: string }, helpers: JobHelpers) => {
    const webhookId = "webhookId" in payload ? payload.webhookId : await webhookOfDelivery(deps.db, payload.deliveryId);
    if (webhookId === undefined) return;
    const running = runners.get(webhookId);
    if (running) {
      running.nudge();
      return;
    }
    const owner = helpers.job.locked_by;
    if (!owner) throw new Error("a running job without its worker pool's id");
    watch(helpers.abortSignal);
    const runner = new WebhookRunner(webhookId, owner, deps, helpers.abortSignal);
    runners.set(webhookId, runner);
    try {
      await runner.run();
    } finally {
      runners.delete(webhookId);
    }
  };

  return {
    taskList: {
      [FANOUT_TASK]: withPlainErrors(async ({ eventId }: { eventId: string }) => {
        const created = await fanOut(deps.db, eventId, deps.maxAttempts);
        deps.logger.debug({ eventId, deliveries: created }, "event fanned out");
      }),
      [DELIVER_TASK]: withPlainErrors(deliver),
      [RETENTION_TASK]: withPlainErrors(async (_payload: unknown, helpers: JobHelpers) => {
        await sweepRetention(
          { db: deps.db, logger: deps.logger, metrics: deps.metrics, settings: deps.retention },
          helpers.abortSignal,
        );
      }),
    },
    drain(poolId) {
      for (const runner of runners.values()) if (runner.owner === poolId) runner.drain();
    },
  };
}

/**
 * graphile-worker logs the message of an error a task throws, and drizzle's
 * messages quote the query's parameters: throw the driver's error instead. The
 * job fails and graphile-worker retries it later.
 */
function withPlainErrors<P>(task: (payload: P, helpers: JobHelpers) => Promise<void>) {
  return async (payload: P, helpers: JobHelpers) => {
    try {
      await task(payload, helpers);
    } catch (err) {
      throw rootCause(err);
    }
  };
}
