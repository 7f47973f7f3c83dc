import { sql } from "drizzle-orm";
import type { Queryable } from "./client.js";
import { addJobs, deliverJobSpec, DELIVER_TASK, FANOUT_TASK, queued } from "./jobs.js";
import { preparedStatement } from "./prepared.js";
import { webhookRunners } from "./schema.js";

// Which worker pools are alive: each keeps a database session whose
// application_name is this prefix and its pool id (delivery/worker.ts).

export const LIVENESS_PREFIX = "httpqueue-worker:";

const liveSessions = sql`
  select substr(application_name, ${sql.raw(String(LIVENESS_PREFIX.length + 1))}) from pg_stat_activity
  where application_name like ${sql.raw(`'${LIVENESS_PREFIX}%'`)}`;

const withoutSession = preparedStatement<{ pool: string }>(sql`
  select locked_by as pool from graphile_worker.jobs
  where locked_by is not null and task_identifier in (${sql.raw(`'${FANOUT_TASK}', '${DELIVER_TASK}'`)})
  union
  select owner from ${webhookRunners}
  except
  ${liveSessions}
`);

/** Pools that hold httpqueue jobs, or webhooks (webhook_runners), and have no live session now. */
export async function poolsWithoutSession(db: Queryable): Promise<string[]> {
  const rows = await withoutSession(db, {});
  return rows.map((row) => row.pool);
}

export interface Released {
  pools: string[];
  jobs: number;
  webhooks: number;
}

const releaseStatement = preparedStatement<{ pools: string[] | null; jobs: number; webhooks: number }>(sql`
  with dead as (
    select unnest(${sql.placeholder("pools")}::text[]) as pool
    except
    ${liveSessions}
  ), counted as (
    select count(*)::int as jobs from graphile_worker.jobs where locked_by in (select pool from dead)
  ), unlocked as (
    select graphile_worker.force_unlock_workers(array(select pool from dead)) where exists (select 1 from dead)
  ), released as (
    delete from ${webhookRunners} where owner in (select pool from dead) returning webhook_id
  ), jobs as (
    ${addJobs(sql`select ${deliverJobSpec(sql`webhook_id`)} as spec from released order by webhook_id`)}
  )
  select (select array_agg(pool) from dead) as pools,
    (select jobs from counted) as jobs,
    (select count(*) from released)::int as webhooks,
    (select count(*) from unlocked)::int as unlocked,
    ${queued("jobs")} as queued
`);

/**
 * For those of `pools` that still have no live session (or that have ended:
 * a pool the supervisor replaced): unlocks their jobs (graphile-worker would
 * hold them for four hours) and lets go of the webhooks they delivered to,
 * each with a job due now; in one statement.
 */
export async function releaseDeadPools(db: Queryable, pools: string[]): Promise<Released> {
  const [row] = await releaseStatement(db, { pools: `{${pools.join(",")}}` });
  return { pools: row?.pools ?? [], jobs: row?.jobs ?? 0, webhooks: row?.webhooks ?? 0 };
}
