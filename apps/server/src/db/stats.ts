import { sql } from "drizzle-orm";
import type { DatabaseStats, QueueCounts } from "../observability/metrics.js";
import type { Db } from "./client.js";
import { webhookRegistrations } from "./schema.js";
import { DELIVER_TASK, FANOUT_TASK } from "./jobs.js";

const TASKS = [FANOUT_TASK, DELIVER_TASK];

/** Cheap enough to run every few seconds: a query that touches no table. */
export async function ping(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}

/** Jobs of our tasks by state, and registered webhooks. Reads the whole queue: throttle the callers. */
export async function readDatabaseStats(db: Db): Promise<DatabaseStats> {
  const jobs = await db.execute<{ task: string } & { [K in keyof QueueCounts]: number }>(sql`
    select task_identifier as task,
      count(*) filter (where locked_at is null and attempts < max_attempts and run_at <= now())::int as pending,
      count(*) filter (where locked_at is null and attempts < max_attempts and run_at > now())::int as scheduled,
      count(*) filter (where locked_at is not null)::int as locked,
      count(*) filter (where locked_at is null and attempts >= max_attempts)::int as failed
    from graphile_worker.jobs
    where task_identifier in (${sql.join(
      TASKS.map((t) => sql`${t}`),
      sql`, `,
    )})
    group by task_identifier
  `);
  const w = webhookRegistrations;
  const [webhooks] = await db
    .select({
      active: sql<number>`count(*) filter (where ${w.active})::int`,
      inactive: sql<number>`count(*) filter (where not ${w.active})::int`,
    })
    .from(w)
    .where(sql`${w.deletedAt} is null`);

  const queue: Record<string, QueueCounts> = {};
  for (const task of TASKS) queue[task] = { pending: 0, scheduled: 0, locked: 0, failed: 0 };
  for (const { task, pending, scheduled, locked, failed } of jobs) queue[task] = { pending, scheduled, locked, failed };
  return { queue, webhooks: webhooks ?? { active: 0, inactive: 0 } };
}
