// The baselines that bound httpqueue, measured in the same run: (a) a bare
// undici POST loop, (b) graphile-worker running a task that only POSTs (and,
// for reference, one that does nothing), (c) single-row INSERT commits.
import { Logger, run, runMigrations, type Runner, type Task } from "graphile-worker";
import { Agent, request, type Dispatcher } from "undici";
import { now, sleep } from "./clock.js";
import { connect, type BenchDatabase } from "./database.js";
import type { BenchReceiver } from "./receiver.js";
import { Samples } from "./stats.js";

/** Headers like the ones httpqueue sends (values of the same sizes), so that both move the same bytes. */
export const DELIVERY_HEADERS: Record<string, string> = {
  "content-type": "application/json",
  "user-agent": "httpqueue/0.1.0",
  "webhook-id": "0190a0b2-7c3e-7d1f-9a2b-3c4d5e6f7a8b",
  "webhook-timestamp": "1767225600",
  "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
};

/** POSTs `body` the way the delivery task does: one pooled request, the answer read to its end. */
async function post(dispatcher: Dispatcher, url: string, body: string): Promise<void> {
  const res = await request(url, { dispatcher, method: "POST", headers: DELIVERY_HEADERS, body });
  for await (const _ of res.body) {
    // Read like the delivery task reads a response body.
  }
}

/** Requests that arrived within [from, to), per second. */
export async function arrivalRate(receiver: BenchReceiver, from: number, to: number): Promise<number> {
  const { times } = await receiver.take();
  let n = 0;
  for (const t of times) if (t >= from && t < to) n++;
  return (n * 1000) / (to - from);
}

export interface WindowOptions {
  warmupMs: number;
  windowMs: number;
}

/**
 * (a) `concurrency` loops POSTing to the receiver through one undici Agent
 * with as many connections, as httpqueue's HTTP client does. Returns requests
 * received per second within the window, and the client's CPU per request.
 */
export async function measurePostLoop(
  receiver: BenchReceiver,
  options: WindowOptions & { concurrency: number; body: (seq: number) => string },
): Promise<{ rate: number; clientCpuMsPerRequest: number }> {
  await receiver.reset();
  const agent = new Agent({ connections: options.concurrency, keepAliveTimeout: 30_000 });
  const url = `${receiver.url}/baseline`;
  const start = now();
  const from = start + options.warmupMs;
  const to = from + options.windowMs;
  let seq = 0;
  let cpuAtFrom: NodeJS.CpuUsage | undefined;
  let cpuAtTo: NodeJS.CpuUsage | undefined;
  let sentInWindow = 0;
  const marks = (async () => {
    await sleep(from - now());
    cpuAtFrom = process.cpuUsage();
    await sleep(to - now());
    cpuAtTo = process.cpuUsage(cpuAtFrom);
  })();
  const loop = async () => {
    while (now() < to) {
      const t = now();
      await post(agent, url, options.body(seq++));
      if (t >= from) sentInWindow++;
    }
  };
  await Promise.all([marks, ...Array.from({ length: options.concurrency }, loop)]);
  await agent.close();
  const rate = await arrivalRate(receiver, from, to);
  const cpu = cpuAtTo ? (cpuAtTo.user + cpuAtTo.system) / 1000 : NaN;
  return { rate, clientCpuMsPerRequest: cpu / Math.max(1, sentInWindow) };
}

/** graphile-worker's settings in httpqueue (apps/server/src/delivery/worker.ts), for the same concurrency. */
function workerPreset(url: string, concurrency: number) {
  return {
    worker: {
      connectionString: url,
      concurrentJobs: concurrency,
      maxPoolSize: concurrency + 2,
      pollInterval: 1000,
      localQueue: { size: concurrency * 2 },
      completeJobBatchDelay: 5,
      failJobBatchDelay: 5,
    },
  };
}

const silentLogger = new Logger(() => () => undefined);

/**
 * Queues `jobs` jobs in one transaction: they become visible, and wake the
 * worker, all at once when it commits. Returns when it committed.
 */
export async function queueJobs(db: BenchDatabase, task: string, jobs: number): Promise<number> {
  const chunk = 20_000;
  await db.sql.begin(async (tx) => {
    for (let from = 0; from < jobs; from += chunk) {
      const to = Math.min(jobs, from + chunk) - 1;
      await tx`
        select count(*) from graphile_worker.add_jobs(array(
          select (${task}, json_build_object('seq', g), null, null, null, null, null, null)::graphile_worker.job_spec
          from generate_series(${from}::int, ${to}::int) g
        ))`;
    }
  });
  return now();
}

export interface DrainResult {
  /** Jobs (or requests) per second, from the commit that queued them to the last one done. */
  rate: number;
  seconds: number;
}

/**
 * (b) graphile-worker with httpqueue's settings, running a task that only
 * POSTs the job's payload to the receiver (or, with `noop`, does nothing):
 * `jobs` jobs queued at once, drained. The database must be fresh.
 */
export async function measureGraphile(
  db: BenchDatabase,
  receiver: BenchReceiver,
  options: { concurrency: number; jobs: number; noop: boolean; body: (seq: number) => string; timeoutMs: number },
): Promise<DrainResult> {
  await runMigrations({ connectionString: db.url, logger: silentLogger });
  await receiver.reset();
  const agent = new Agent({ connections: options.concurrency, keepAliveTimeout: 30_000 });
  const url = `${receiver.url}/graphile`;
  const doneAt = new Samples(options.jobs);
  const task: Task = options.noop
    ? () => {
        doneAt.push(now());
      }
    : async (payload) => {
        await post(agent, url, options.body((payload as { seq: number }).seq));
      };
  const runner: Runner = await run({
    taskList: { bench_job: task },
    noHandleSignals: true,
    logger: silentLogger,
    preset: workerPreset(db.url, options.concurrency),
  });
  try {
    const start = await queueJobs(db, "bench_job", options.jobs);
    const deadline = start + options.timeoutMs;
    let done = 0;
    while (now() < deadline) {
      done = options.noop ? doneAt.length : await receiver.count();
      if (done >= options.jobs) break;
      await sleep(10);
    }
    if (done < options.jobs) throw new Error(`graphile-worker ran ${done} of ${options.jobs} jobs in time`);
    const last = options.noop ? doneAt.get(doneAt.length - 1) : lastArrival(await receiver.take());
    const seconds = (last - start) / 1000;
    return { rate: options.jobs / seconds, seconds };
  } finally {
    await runner.stop();
    await agent.close();
  }
}

function lastArrival({ times }: { times: Float64Array }): number {
  let last = -Infinity;
  for (const t of times) if (t > last) last = t;
  return last;
}

/**
 * (c) `clients` loops, each committing single-row INSERTs (autocommit) through
 * postgres.js with a pool of as many connections. Returns commits per second.
 */
export async function measureInserts(
  db: BenchDatabase,
  options: WindowOptions & { clients: number; payload: string },
): Promise<number> {
  await db.sql`
    create table bench_insert (
      id uuid primary key default gen_random_uuid(),
      payload text not null,
      created_at timestamptz not null default now()
    )`;
  const sql = connect(db.url, options.clients);
  try {
    // Connect every client before the clock starts.
    await Promise.all(Array.from({ length: options.clients }, () => sql`select 1`));
    const start = now();
    const from = start + options.warmupMs;
    const to = from + options.windowMs;
    let committed = 0;
    const loop = async () => {
      while (now() < to) {
        await sql`insert into bench_insert (payload) values (${options.payload})`;
        const t = now();
        if (t >= from && t < to) committed++;
      }
    };
    await Promise.all(Array.from({ length: options.clients }, loop));
    return (committed * 1000) / options.windowMs;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
