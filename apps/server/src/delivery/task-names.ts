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
      /** `attempt`: the attempt this job makes (1 for the first); a job for any other is stale. */
      [DELIVER_TASK]: { deliveryId: string; attempt: number };
    }
  }
}

/**
 * SQL for the job key of one attempt of a delivery. Each attempt has a job of
 * its own: the retry queued while an attempt's job still runs is a new row,
 * never that job's (which graphile-worker deletes when it completes), and a
 * cancellation removes the one queued job, the next attempt's.
 */
export function deliverJobKey(deliveryId: SQL, attempt: SQL): SQL {
  return sql`${sql.raw(`'${DELIVER_TASK}:'`)} || ${deliveryId}::text || ':' || (${attempt})::text`;
}
