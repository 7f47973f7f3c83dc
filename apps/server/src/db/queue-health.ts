import { sql } from "drizzle-orm";
import type { Db } from "./client.js";
import { DELIVER_TASK, FANOUT_TASK } from "./jobs.js";

/**
 * How long the oldest due job of httpqueue's tasks has waited for a worker,
 * in seconds; 0 when none is due. Due: run_at reached, not locked, attempts
 * left. Jobs of other tasks sharing the graphile_worker schema are not ours
 * to run, so they do not count.
 *
 * One probe of graphile-worker's partial index on available jobs
 * (priority, run_at): httpqueue queues every job at priority 0, so the first
 * entry of ours in run_at order is the answer, however many jobs wait for
 * their time (wake-ups for retries).
 */
export async function oldestDueJobSeconds(db: Db): Promise<number> {
  const [row] = await db.execute<{ seconds: number }>(sql`
    select extract(epoch from now() - j.run_at)::float8 as seconds
    from graphile_worker._private_jobs j
    where j.is_available and j.priority = 0 and j.run_at <= now()
      and j.task_id = any(array(
        select t.id from graphile_worker._private_tasks t
        where t.identifier in (${sql.raw(`'${FANOUT_TASK}', '${DELIVER_TASK}'`)})
      ))
    order by j.run_at
    limit 1
  `);
  return Math.max(0, row?.seconds ?? 0);
}
