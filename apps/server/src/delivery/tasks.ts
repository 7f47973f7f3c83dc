import type { TaskList } from "graphile-worker";
import type { Db } from "../db/client.js";
import { fanOut } from "../db/deliveries.js";
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
    [FANOUT_TASK]: async ({ eventId }: { eventId: string }) => {
      const created = await fanOut(deps.db, eventId, deps.maxAttempts);
      deps.logger.debug({ eventId, deliveries: created }, "event fanned out");
    },
    [DELIVER_TASK]: createDeliverTask(deps),
  };
}
