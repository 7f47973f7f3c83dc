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

/** Retries of a job whose task threw (infrastructure errors, not HTTP failures). */
export const JOB_MAX_ATTEMPTS = 25;

/**
 * SQL for the `graphile_worker.job_spec` of one attempt's job (for
 * `graphile_worker.add_jobs`), to run at `runAt` (null: now).
 */
export function deliverJobSpec(deliveryId: SQL, attempt: SQL, runAt: SQL = sql`null`): SQL {
  return sql`(
    ${sql.raw(`'${DELIVER_TASK}'`)}::text,
    json_build_object('deliveryId', ${deliveryId}, 'attempt', ${attempt}),
    null::text,
    (${runAt})::timestamptz,
    ${sql.raw(String(JOB_MAX_ATTEMPTS))}::smallint,
    ${deliverJobKey(deliveryId, attempt)},
    null::smallint,
    null::text[]
  )::graphile_worker.job_spec`;
}
