import { sql, type SQL } from "drizzle-orm";
import { createBatcher } from "./batcher.js";
import { perDatabase, type Db, type Queryable } from "./client.js";
import { addJobs, deliverJobSpec, queued, wakeJobKey } from "./jobs.js";
import { preparedStatement } from "./prepared.js";
import { eventRecords, webhookDeliveries, webhookRegistrations, webhookRunners, type OrderingValue } from "./schema.js";

// The statements of the webhook runners (delivery/runner.ts): the deliveries
// table is the queue, and a row of webhook_runners says which server delivers
// to a webhook. Runners working at the same time share statements (see
// db/batcher.ts): round trips, more than the work inside them, are what a
// delivery costs.

/** Most runners per statement: about the number of webhooks a server delivers to at once. */
const MAX_BATCH = 64;
/** Statements of each kind running at once: several fill the pool's connections in turn. */
const MAX_CONCURRENT_BATCHES = 2;

/** A due delivery with what its attempt needs: its event's payload and its webhook. */
export type DueDelivery = {
  id: string;
  status: "pending" | "retrying";
  attemptCount: number;
  maxAttempts: number;
  /** Times resent when read: its outcome is recorded as the delivery's only if it was not resent since. */
  resends: number;
  eventId: string;
  payload: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Measured by the database's clock, like created_at: immune to clock skew. */
  eventAgeMs: number;
  webhookId: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  /** Seconds. */
  timeout: number;
  active: boolean;
  /** Unregistered. */
  deleted: boolean;
  signingSecret: string;
  /** During a rotation's overlap, the secret before it (stored as signingSecret is); null otherwise. */
  previousSigningSecret: string | null;
  /** When previousSigningSecret stops signing, in ms since the epoch. */
  previousSecretExpiresAt: number | null;
  /** The webhook's retry schedule in seconds; null: the server's. */
  retrySchedule: number[] | null;
  /** The webhook's rate limit (requests a second, 0: none) and in-flight cap (0: the server's). */
  rateLimitPerSecond: number;
  maxInFlight: number;
  ordering: OrderingValue;
};

/** A row of the statements below: a due delivery (its columns named as DueDelivery's), and the request it answers. */
type DueRow = DueDelivery & { ord: number };

/** SQL: whether the webhook `webhookId` keeps its deliveries in order (by key). */
const keyed = (webhookId: SQL) =>
  sql`coalesce((select w0.ordering = 'by_key' from ${webhookRegistrations} w0 where w0.id = ${webhookId}), false)`;

/**
 * SQL: when the webhook's next delivery may be attempted (null: none is
 * waiting): its earliest delivery not yet ended, or for a webhook that keeps
 * order, the earliest of the first delivery of each key (the later ones of
 * a key wait for it; see httpqueue_key_heads in the migrations). Both read an
 * index a few entries deep, whatever the backlog.
 */
const nextDue = (webhookId: SQL) => sql`least(
    (select d.next_attempt_at from ${webhookDeliveries} d
      where not ${keyed(webhookId)} and d.webhook_id = ${webhookId} and d.status in ('pending', 'retrying')
      order by d.next_attempt_at limit 1),
    (select min(h.next_attempt_at) from httpqueue_key_heads(${webhookId}) h)
  )`;

/**
 * SQL: the due deliveries of the webhook `input.webhook_id`, oldest due first,
 * at most `input.lim`, but for the ids in `input.exclude` (those the runner
 * holds already), with their event and webhook. For a lateral join. A
 * webhook that keeps order gets only the first delivery of each ordering key.
 */
const dueDeliveries = (condition = sql`true`) => {
  const columns = sql`id, status, attempt_count, max_attempts, event_id, webhook_id, next_attempt_at, expires_at, resends`;
  const due = sql`${condition} and status in ('pending', 'retrying') and next_attempt_at <= now()
    and id <> all(coalesce(input.exclude, '{}'))`;
  return sql`
  select d.id, d.status, d.attempt_count as "attemptCount", d.max_attempts as "maxAttempts", d.resends, e.id as "eventId",
    e.payload, (extract(epoch from coalesce(d.expires_at, e.expires_at)) * 1000)::float8 as "expiresAt",
    (extract(epoch from now() - e.created_at) * 1000)::float8 as "eventAgeMs",
    w.id as "webhookId", w.url, w.method, w.headers, w.timeout, w.active, w.deleted_at is not null as deleted,
    w.signing_secret as "signingSecret",
    case when w.previous_secret_expires_at > now() then w.previous_signing_secret end as "previousSigningSecret",
    (extract(epoch from w.previous_secret_expires_at) * 1000)::float8 as "previousSecretExpiresAt",
    w.retry_schedule as "retrySchedule",
    w.rate_limit_per_second as "rateLimitPerSecond", w.max_in_flight as "maxInFlight", w.ordering
  from (
    -- The due index, read in order; OFFSET 0 keeps the planner from folding it into a join.
    (select ${columns} from ${webhookDeliveries}
      where not ${keyed(sql`input.webhook_id`)} and webhook_id = input.webhook_id and ${due}
      order by next_attempt_at limit input.lim offset 0)
    union all
    (select ${columns} from httpqueue_key_heads(input.webhook_id)
      where ${due}
      order by next_attempt_at limit input.lim offset 0)
  ) d
  join ${eventRecords} e on e.id = d.event_id
  join ${webhookRegistrations} w on w.id = d.webhook_id`;
};

/** The delivery of a row, without the request's `ord`. */
function toDue({ ord: _ord, ...due }: DueRow): DueDelivery {
  return due;
}

/** Groups rows by `ord`: one list per input, in order (empty when an input has no row). */
function byOrd<R extends { ord: number }, T>(rows: R[], count: number, map: (row: R) => T | undefined): T[][] {
  const out = Array.from({ length: count }, () => [] as T[]);
  for (const row of rows) {
    const value = map(row);
    if (value !== undefined) out[row.ord]?.push(value);
  }
  return out;
}

export interface StartRequest {
  webhookId: string;
  /** The graphile-worker pool id of the server starting it. */
  owner: string;
  limit: number;
}

/**
 * Taken: the webhook's first page of due deliveries, and its pace as the
 * last runner left it; undefined: another server delivers to it.
 */
export type StartResult = { due: DueDelivery[]; pace: PaceRow } | undefined;

/** A webhook's pace state as stored (see delivery/pace.ts); times in ms since the epoch. */
export interface PaceRow {
  pausedUntil: number | null;
  pace: number | null;
  nextSendAt: number | null;
  recentSends?: number[] | null;
}

// Taking a webhook and reading what it needs are two statements: a start
// that finds the webhook being let go waits for that runner's statement to
// commit, but a statement reads with the snapshot it began with, so a read
// in the same statement would miss what that runner left (its pace, the
// outcomes it recorded last) and could send a delivery again.
const acquireStatement = preparedStatement<{ ord: number }>(sql`
  with input as (
    select x.ord, x.webhook_id, x.owner
    from json_to_recordset(${sql.placeholder("input")}::json) as x(ord int, webhook_id uuid, owner text)
  ), acquired as (
    -- Taken when free, or already ours (a run of ours that ended without letting go).
    insert into ${webhookRunners} (webhook_id, owner)
    select webhook_id, owner from input order by webhook_id
    on conflict (webhook_id) do update set owner = excluded.owner, started_at = now()
      where ${webhookRunners}.owner = excluded.owner
    returning webhook_id
  )
  select input.ord from input join acquired using (webhook_id)
`);

const takenStatement = preparedStatement<DueRow & { state: PaceRow | null }>(sql`
  with input as (
    select x.ord, x.webhook_id, x.lim, null::uuid[] as exclude
    from json_to_recordset(${sql.placeholder("input")}::json) as x(ord int, webhook_id uuid, lim int)
  )
  select input.ord, due.*, (
      select json_build_object(
        'pausedUntil', extract(epoch from ws.paused_until) * 1000,
        'pace', ws.pace,
        'nextSendAt', extract(epoch from ws.next_send_at) * 1000,
        'recentSends', ws.recent_sends
      ) from ${webhookRegistrations} ws where ws.id = input.webhook_id
    ) as state
  from input
  left join lateral (${dueDeliveries()}) due on true
  order by input.ord
`);

const NO_PACE: PaceRow = { pausedUntil: null, pace: null, nextSendAt: null };

async function startRunners(db: Queryable, requests: StartRequest[]): Promise<StartResult[]> {
  const input = requests.map((r, ord) => ({ ord, webhook_id: r.webhookId, owner: r.owner, lim: r.limit }));
  const taken = new Set((await acquireStatement(db, { input: JSON.stringify(input) })).map((r) => r.ord));
  if (taken.size === 0) return requests.map(() => undefined);
  const rows = await takenStatement(db, { input: JSON.stringify(input.filter((r) => taken.has(r.ord))) });
  const pace = new Map(rows.map((r) => [r.ord, r.state ?? NO_PACE]));
  // A webhook with nothing due has a row without a delivery.
  const due = byOrd(rows, requests.length, ({ state: _s, ...row }) =>
    (row.id as string | null) === null ? undefined : toDue(row),
  );
  return due.map((list, ord) => {
    const state = taken.has(ord) ? pace.get(ord) : undefined;
    return state === undefined ? undefined : { due: list, pace: state };
  });
}

export interface FetchRequest {
  webhookId: string;
  limit: number;
  /** Deliveries the runner holds already (queued or being attempted). */
  exclude: string[];
}

const fetchStatement = preparedStatement<DueRow>(sql`
  with input as (
    select x.ord, x.webhook_id, x.lim, x.exclude
    from json_to_recordset(${sql.placeholder("input")}::json) as x(ord int, webhook_id uuid, lim int, exclude uuid[])
  )
  select input.ord, due.*
  from input cross join lateral (${dueDeliveries()}) due
`);

async function fetchDue(db: Queryable, requests: FetchRequest[]): Promise<DueDelivery[][]> {
  const input = requests.map((r, ord) => ({ ord, webhook_id: r.webhookId, lim: r.limit, exclude: r.exclude }));
  const rows = await fetchStatement(db, { input: JSON.stringify(input) });
  return byOrd(rows, requests.length, toDue);
}

export interface FinishRequest {
  webhookId: string;
  owner: string;
  /**
   * "done": let go unless deliveries are due. "yield": let go whatever is due
   * (the server stops, or the runner had its turn), with a job due now for
   * whichever server takes it. "abandon": let go, queueing nothing (the
   * runner failed: graphile-worker retries its job later).
   */
  mode: "done" | "yield" | "abandon";
  /** The webhook's pace, kept on its row for the next runner. */
  pace: PaceRow;
  /** Let go whatever is due: the receiver asked for a pause (its end gets the wake-up job). */
  paused: boolean;
}

export interface FinishResult {
  /** No longer ours: the runner ends. False: deliveries are due, the runner goes on. */
  released: boolean;
}

// Let go of the webhook unless deliveries are due (checked in the same
// statement: a server that failed to take the webhook meanwhile saw it
// still taken, so this statement, which starts after, sees what that server
// pushed). On letting go, the next due time gets its wake-up job (or, when
// yielding with deliveries due, a job due now). A row that is not ours any
// more (the liveness sweep took us for dead) counts as released.
const finishStatement = preparedStatement<{ ord: number; released: boolean }>(sql`
  with requested as (
    select x.*, ${nextDue(sql`x.webhook_id`)} as next_due
    from json_to_recordset(${sql.placeholder("input")}::json) as x(
      ord int, webhook_id uuid, owner text, mode text, paused boolean, paused_until timestamptz, pace float8,
      next_send_at timestamptz, recent_sends float8[]
    )
  ), input as (
    select requested.*, coalesce(next_due <= now(), false) as due from requested
  ), released as (
    delete from ${webhookRunners} r using input
    where r.webhook_id = input.webhook_id and r.owner = input.owner and (input.mode <> 'done' or not input.due or input.paused)
    returning r.webhook_id
  ), saved as (
    update ${webhookRegistrations} w
    set paused_until = input.paused_until, pace = input.pace, next_send_at = input.next_send_at,
      recent_sends = input.recent_sends
    from input join released using (webhook_id)
    where w.id = input.webhook_id
      and (w.paused_until, w.pace, w.next_send_at, w.recent_sends)
        is distinct from (input.paused_until, input.pace, input.next_send_at, input.recent_sends)
    returning w.id
  ), next as (
    select input.webhook_id, input.due and not input.paused as due, greatest(input.next_due, input.paused_until) as at
    from input join released using (webhook_id)
    where input.mode <> 'abandon'
  ), jobs as (
    ${addJobs(
      sql`
      select case when due then ${deliverJobSpec(sql`webhook_id`)}
        else ${deliverJobSpec(sql`webhook_id`, sql`at`, wakeJobKey(sql`webhook_id`, sql`at`))} end as spec
      from next where at is not null
      order by webhook_id`,
      true,
    )}
  )
  select input.ord,
    released.webhook_id is not null
      or not exists (select 1 from ${webhookRunners} r where r.webhook_id = input.webhook_id and r.owner = input.owner)
      as released,
    ${queued("jobs")} as queued, (select count(*) from saved)::int as saved
  from input left join released using (webhook_id)
  order by input.ord
`);

const toTime = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

async function finishRunners(db: Queryable, requests: FinishRequest[]): Promise<FinishResult[]> {
  const input = requests.map((r, ord) => ({
    ord,
    webhook_id: r.webhookId,
    owner: r.owner,
    mode: r.mode,
    paused: r.paused,
    paused_until: toTime(r.pace.pausedUntil),
    pace: r.pace.pace,
    next_send_at: toTime(r.pace.nextSendAt),
    recent_sends: r.pace.recentSends ?? null,
  }));
  const rows = await finishStatement(db, { input: JSON.stringify(input) });
  return rows.map((row) => ({ released: row.released }));
}

const batched = <I, O>(run: (db: Db, items: I[]) => Promise<O[]>, key?: (item: I) => string) =>
  perDatabase((db) =>
    createBatcher({
      run: (items: I[]) => run(db, items),
      maxBatchSize: MAX_BATCH,
      maxConcurrent: MAX_CONCURRENT_BATCHES,
      ...(key ? { key } : {}),
    }),
  );

const starters = batched(startRunners, (r) => r.webhookId);
const fetchers = batched(fetchDue, (r) => r.webhookId);
const finishers = batched(finishRunners, (r) => r.webhookId);

/**
 * Takes the webhook for this server (unless another one has it) and reads its
 * first page of due deliveries and its pace. Concurrent calls share the statements.
 */
export function startRunner(db: Db, request: StartRequest): Promise<StartResult> {
  return starters(db).add(request);
}

/** The webhook's next due deliveries. Concurrent calls share a statement. */
export function fetchDueDeliveries(db: Db, request: FetchRequest): Promise<DueDelivery[]> {
  return fetchers(db).add(request);
}

/** Lets go of the webhook, unless deliveries are due and it is not yielding. Concurrent calls share a statement. */
export function finishRunner(db: Db, request: FinishRequest): Promise<FinishResult> {
  return finishers(db).add(request);
}

const reconcileStatement = preparedStatement<{ webhooks: number }>(sql`
  with stuck as (
    select w.id from ${webhookRegistrations} w
    where not exists (select 1 from ${webhookRunners} r where r.webhook_id = w.id)
      and (w.paused_until is null or w.paused_until < now())
      and exists (
        select 1 from ${webhookDeliveries} d where d.webhook_id = w.id and d.status in ('pending', 'retrying')
      )
      and ${nextDue(sql`w.id`)} < now() - make_interval(secs => ${sql.placeholder("overdueSeconds")}::int)
  ), jobs as (
    ${addJobs(sql`select ${deliverJobSpec(sql`id`)} as spec from stuck order by id`)}
  )
  select (select count(*) from stuck)::int as webhooks, ${queued("jobs")} as queued
`);

/**
 * Queues a job for every webhook with deliveries overdue by more than
 * `overdueSeconds` that no server delivers to: a safety net under the jobs
 * that statements queue (and the way jobs of an older version's format are
 * replaced). Returns how many webhooks it found.
 */
export async function queueOverdueWebhooks(db: Queryable, overdueSeconds: number): Promise<number> {
  const [row] = await reconcileStatement(db, { overdueSeconds });
  return row?.webhooks ?? 0;
}
