import { sql, type SQL } from "drizzle-orm";

// The graphile-worker jobs httpqueue queues, and the SQL that queues them.
// Jobs are queued by SQL inside the statements that create or change what
// they act on (graphile_worker.add_jobs), so that one commit holds both.

/** Creates the deliveries of a pushed event with more webhooks than a push statement takes. */
export const FANOUT_TASK = "httpqueue.fanout";
/**
 * Delivers what is due for one webhook: its payload names the webhook, not
 * deliveries. The deliveries table is the queue (due: pending or retrying
 * with next_attempt_at reached); a job only says "look at this webhook", so a
 * job that runs twice, or finds another server already delivering to that
 * webhook, does no harm and nothing is lost with a job.
 */
export const DELIVER_TASK = "httpqueue.deliver";

export interface DeliverPayload {
  webhookId: string;
}

/**
 * Deletes what retention says is old enough (see delivery/retention.ts):
 * queued by graphile-worker's cron, once a minute across all servers.
 */
export const RETENTION_TASK = "httpqueue.retention";

declare global {
  // Typed task payloads for graphile-worker (declaration merging).
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace GraphileWorker {
    interface Tasks {
      [FANOUT_TASK]: { eventId: string };
      /** `deliveryId`: jobs queued by versions before per-webhook delivery; their delivery's webhook is run. */
      [DELIVER_TASK]: DeliverPayload | { deliveryId: string };
      /** `_cron` when queued by the crontab. */
      [RETENTION_TASK]: { _cron?: unknown };
    }
  }
}

/** Retries of a job whose task threw (infrastructure errors, not HTTP failures). */
export const JOB_MAX_ATTEMPTS = 25;

/**
 * SQL for the `graphile_worker.job_spec` of a delivery job for the webhook
 * `webhookId`, due at `runAt` (null: now), with job key `key` (null: none).
 *
 * The jobs that statements queue when they create deliveries have no key: a
 * job per webhook and statement. With a key per webhook, graphile-worker's
 * add_jobs first takes the key off a running job that holds it, while
 * graphile-worker completes finished jobs in batches (one DELETE for
 * several): the two lock job rows in different orders and deadlock, and
 * PostgreSQL breaks the tie only after its deadlock_timeout (1 s by
 * default), stalling the pushes meanwhile (seen in the server's log and as a
 * 1 s end-to-end tail in about a third of the bench's runs), for no gain in
 * deliveries under steady pushes. A job without a key only inserts.
 */
export function deliverJobSpec(webhookId: SQL, runAt: SQL = sql`null`, key: SQL = sql`null`): SQL {
  return sql`(
    ${sql.raw(`'${DELIVER_TASK}'`)}::text,
    json_build_object('webhookId', ${webhookId}),
    null::text,
    (${runAt})::timestamptz,
    ${sql.raw(String(JOB_MAX_ATTEMPTS))}::smallint,
    (${key})::text,
    null::smallint,
    null::text[]
  )::graphile_worker.job_spec`;
}

/**
 * SQL for the key of the job that wakes the webhook's deliveries due at `at`:
 * one per webhook and second, so that wake-ups for the same moment merge, and
 * a wake-up never moves another (a later one cannot hide an earlier one).
 */
export function wakeJobKey(webhookId: SQL, at: SQL): SQL {
  return sql`${sql.raw(`'${DELIVER_TASK}:'`)} || (${webhookId})::text || '@' || floor(extract(epoch from (${at})))::bigint::text`;
}

/**
 * SQL that removes the webhook's wake-up jobs that wait in the queue: those
 * of the retries of a webhook whose deliveries were just cancelled. (Jobs due
 * now are left: they find nothing due.) Reads every job's key: for rare
 * operations only.
 */
export function removeWakeJobs(webhookId: SQL): SQL {
  return sql`select graphile_worker.complete_jobs(array(
    select id from graphile_worker.jobs
    where locked_at is null and key like ${sql.raw(`'${DELIVER_TASK}:'`)} || (${webhookId})::text || '@%'
  ))`;
}

/** SQL for the job spec of the fan-out of event `eventId`. */
export function fanOutJobSpec(eventId: SQL): SQL {
  return sql`(${sql.raw(`'${FANOUT_TASK}'`)}::text, json_build_object('eventId', ${eventId}), null, null, null, null, null, null)::graphile_worker.job_spec`;
}

/**
 * SQL for the body of a CTE that queues the job specs that `specs` selects
 * (a query with one column, `spec`), in its order; nothing when it selects none.
 *
 * PostgreSQL runs a CTE that only selects (as one calling add_jobs does) only
 * if the statement reads it: every statement with such a CTE must reference
 * it through `queued(name)`, or its jobs are silently never queued.
 */
export function addJobs(specs: SQL, preserveRunAt = false): SQL {
  return sql`select graphile_worker.add_jobs(array_agg(spec), ${sql.raw(String(preserveRunAt))}) from (${specs}) specs having count(*) > 0`;
}

/** SQL that reads the CTE `name` built by `addJobs`, so that it runs: use it as a column of the final select. */
export function queued(name: string): SQL {
  return sql`(select count(*) from ${sql.raw(name)})::int`;
}
