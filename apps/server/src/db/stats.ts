import { sql } from "drizzle-orm";
import type { DatabaseStats, QueueCounts } from "../observability/metrics.js";
import type { Db } from "./client.js";
import { webhookDeliveries, webhookRegistrations, webhookRunners } from "./schema.js";
import { DELIVER_TASK, FANOUT_TASK } from "./jobs.js";
import { oldestDueJobSeconds } from "./queue-health.js";

const TASKS = [FANOUT_TASK, DELIVER_TASK];

/** Cheap enough to run every few seconds: a query that touches no table. */
export async function ping(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}

/**
 * Jobs of our tasks by state, registered webhooks, and the deliveries that
 * have not ended. Reads the whole queue: throttle the callers.
 */
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

  // The due index holds exactly the deliveries that have not ended.
  const d = webhookDeliveries;
  const [waiting] = await db
    .select({
      due: sql<number>`count(*) filter (where ${d.nextAttemptAt} <= now())::int`,
      scheduled: sql<number>`count(*) filter (where ${d.nextAttemptAt} > now())::int`,
      oldest: sql<number>`coalesce(extract(epoch from now() - min(${d.nextAttemptAt}) filter (where ${d.nextAttemptAt} <= now())), 0)::float8`,
    })
    .from(d)
    .where(sql`${d.status} in ('pending', 'retrying')`);
  const [delivering] = await db.select({ n: sql<number>`count(*)::int` }).from(webhookRunners);
  const oldestJob = await oldestDueJobSeconds(db);

  const queue: Record<string, QueueCounts> = {};
  for (const task of TASKS) queue[task] = { pending: 0, scheduled: 0, locked: 0, failed: 0 };
  for (const { task, pending, scheduled, locked, failed } of jobs) queue[task] = { pending, scheduled, locked, failed };
  return {
    queue,
    webhooks: webhooks ?? { active: 0, inactive: 0 },
    deliveries: { due: waiting?.due ?? 0, scheduled: waiting?.scheduled ?? 0 },
    oldestDueSeconds: Math.max(0, waiting?.oldest ?? 0),
    oldestDueJobSeconds: oldestJob,
    delivering: delivering?.n ?? 0,
  };
}
