import type { JobHelpers, TaskList } from "graphile-worker";
import type { Db } from "../db/client.js";
import { fanOut } from "../db/deliveries.js";
import { rootCause } from "../db/errors.js";
import { createDeliverTask, type DeliverDeps } from "./deliver.js";
import { DELIVER_TASK, FANOUT_TASK } from "./task-names.js";

export interface TaskDeps extends DeliverDeps {
  db: Db;
  /** Attempts each new delivery may make. */
  maxAttempts: number;
}

/** The graphile-worker tasks: fan-out of a pushed event, and delivery attempts. */
export function createTaskList(deps: TaskDeps): TaskList {
  return {
    [FANOUT_TASK]: withPlainErrors(async ({ eventId }: { eventId: string }) => {
      const created = await fanOut(deps.db, eventId, deps.maxAttempts);
      deps.logger.debug({ eventId, deliveries: created }, "event fanned out");
    }),
    [DELIVER_TASK]: withPlainErrors(createDeliverTask(deps)),
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
