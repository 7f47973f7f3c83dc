import { sql, type SQL } from "drizzle-orm";

/** Snapshots the webhooks of a pushed event and creates its deliveries. */
export const FANOUT_TASK = "httpqueue.fanout";
/** Makes the next attempt of one delivery. */
export const DELIVER_TASK = "httpqueue.deliver";

declare global {
  // Typed task payloads for graphile-worker (declaration merging).
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace GraphileWorker {
    interface Tasks {
      [FANOUT_TASK]: { eventId: string };
      [DELIVER_TASK]: { deliveryId: string };
    }
  }
}

/**
 * SQL for the job key of a delivery's job. Each delivery has at most one
 * queued job, so a retry replaces it and a cancellation can remove it.
 */
export function deliverJobKey(deliveryId: SQL): SQL {
  return sql`${sql.raw(`'${DELIVER_TASK}:'`)} || ${deliveryId}::text`;
}
