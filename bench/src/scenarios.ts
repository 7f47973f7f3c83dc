// httpqueue's figures. Each scenario starts the server on a fresh database
// (a copy of a migrated template), loads it, measures, stops it and drops the
// database.
import type { HttpQueueClient } from "@httpqueue/sdk";
import { FANOUT_TASK } from "@httpqueue/server/dist/delivery/task-names.js";
import { now, sleep } from "./clock.js";
import { BENCH_APPLICATION_NAME, type BenchDatabase, type DatabaseAdmin } from "./database.js";
import { answeredRate, closedLoop, createClients, latenciesWithin, openLoop, type PushTarget } from "./load.js";
import {
  backendPids,
  cpuBetween,
  databaseCounters,
  machineBusy,
  snapshotCpu,
  type CpuSnapshot,
  type DatabaseCounters,
} from "./probes.js";
import type { BenchReceiver } from "./receiver.js";
import { startService, type Service } from "./service.js";
import { percentiles } from "./stats.js";

export interface ScenarioContext {
  admin: DatabaseAdmin;
  /** A migrated database to copy. */
  template: string;
  receiver: BenchReceiver;
  concurrency: number;
  channels: number;
  inFlightPerChannel: number;
  payload: (seq: number) => string;
  /** The filler inside every payload, so that seeded events match pushed ones. */
  payloadPad: string;
  warmupMs: number;
  windowMs: number;
  cpuProfileDir?: string | undefined;
}

export interface Running {
  service: Service;
  db: BenchDatabase;
  clients: HttpQueueClient[];
}

const NAMESPACE = "bench";

async function withService<T>(
  ctx: ScenarioContext,
  label: string,
  logLevel: "warn" | "info",
  fn: (running: Running) => Promise<T>,
): Promise<T> {
  const db = await ctx.admin.create({ template: ctx.template, label });
  try {
    const service = await startService({
      databaseUrl: db.url,
      logLevel,
      concurrency: ctx.concurrency,
      cpuProfileDir: ctx.cpuProfileDir,
    });
    const clients = createClients(service.address, ctx.channels);
    try {
      return await fn({ service, db, clients });
    } catch (err) {
      throw new Error(
        `${label}: ${err instanceof Error ? err.message : String(err)}\nserver output:\n${service.output()}`,
        {
          cause: err,
        },
      );
    } finally {
      for (const client of clients) client.close();
      await service.stop();
    }
  } finally {
    await db.drop();
  }
}

/** Registers `count` webhooks for namespace "bench" and `event`, all pointing at the receiver. */
async function registerWebhooks(client: HttpQueueClient, receiver: BenchReceiver, event: string, count: number) {
  for (let i = 0; i < count; i++) {
    await client.registerWebhook({ namespace: NAMESPACE, event, url: `${receiver.url}/hooks/${event}/${i}` });
  }
}

/** The cost of what happened between two marks. */
export interface Cost {
  seconds: number;
  /** CPU ms of the server process. */
  serverCpuMs: number;
  /** CPU ms of the PostgreSQL backends connected to the benchmark's database. */
  postgresCpuMs: number;
  receiverCpuMs: number;
  /** CPU ms of this process (the load). */
  loadCpuMs: number;
  /** Fraction of all cores busy (whole machine). */
  machineBusy: number;
  /** Transactions committed in the database (read-only ones included). */
  commits: number;
}

interface Mark {
  cpu: CpuSnapshot;
  counters: DatabaseCounters;
  backends: number[];
}

/** Samples CPU and the database's counters; `cost(a, b)` is what happened in between. */
function meter(running: Running, receiver: BenchReceiver) {
  const fixed = [running.service.pid, receiver.pid, process.pid];
  let backends: number[] = [];
  return {
    /** CPU of the server, receiver, load and the backends known so far. */
    cpu: (at = now()) => snapshotCpu([...fixed, ...backends], at),
    async mark(): Promise<Mark> {
      backends = await backendPids(running.db.sql, running.db.name, BENCH_APPLICATION_NAME);
      const cpu = snapshotCpu([...fixed, ...backends], now());
      const counters = await databaseCounters(running.db.sql, running.db.name);
      return { cpu, counters, backends };
    },
    /** A backend that connected after `a` counts in full: all its CPU is in between. */
    cost(a: Mark, b: Mark, counters: DatabaseCounters = b.counters): Cost {
      const pg = new Set([...a.backends, ...b.backends]);
      return {
        seconds: (b.cpu.at - a.cpu.at) / 1000,
        serverCpuMs: cpuBetween(a.cpu, b.cpu, [running.service.pid]),
        postgresCpuMs: cpuBetween(a.cpu, b.cpu, pg),
        receiverCpuMs: cpuBetween(a.cpu, b.cpu, [receiver.pid]),
        loadCpuMs: cpuBetween(a.cpu, b.cpu, [process.pid]),
        machineBusy: machineBusy(a.cpu, b.cpu),
        commits: counters.commits - a.counters.commits,
      };
    },
  };
}

/** Per-unit costs: CPU ms and commits per event or delivery. */
export interface UnitCosts {
  serverCpuMs: number;
  postgresCpuMs: number;
  receiverCpuMs: number;
  loadCpuMs: number;
  commits: number;
  machineBusy: number;
}

function perUnit(cost: Cost, units: number): UnitCosts {
  const n = Math.max(1, units);
  return {
    serverCpuMs: cost.serverCpuMs / n,
    postgresCpuMs: cost.postgresCpuMs / n,
    receiverCpuMs: cost.receiverCpuMs / n,
    loadCpuMs: cost.loadCpuMs / n,
    commits: cost.commits / n,
    machineBusy: cost.machineBusy,
  };
}

export interface IngestResult {
  /** Events accepted per second. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  perEvent: UnitCosts;
}

/**
 * PushEvent as fast as the server answers: `channels` clients with
 * `inFlightPerChannel` calls each. The event has no webhook, so the worker
 * only runs its fan-out job (which finds nothing to deliver).
 */
export function ingestClosedLoop(ctx: ScenarioContext, logLevel: "warn" | "info"): Promise<IngestResult> {
  return withService(ctx, `ingest_${logLevel}`, logLevel, async (running) => {
    const m = meter(running, ctx.receiver);
    const target: PushTarget = {
      clients: running.clients,
      namespace: NAMESPACE,
      event: "ingest",
      payload: ctx.payload,
      firstSeq: 0,
    };
    const start = now();
    const from = start + ctx.warmupMs;
    const to = from + ctx.windowMs;
    const marks = markAt(m, from, to);
    const record = await closedLoop(target, ctx.inFlightPerChannel, to);
    const [a, b] = await marks;
    if (record.errors > 0) throw new Error(`${record.errors} PushEvent calls failed: ${record.firstError}`);
    const rate = answeredRate(record, from, to);
    const p = percentiles(latenciesWithin(record, from, to), [50, 99]);
    return {
      rate,
      p50Ms: p[50],
      p99Ms: p[99],
      errors: record.errors,
      perEvent: perUnit(m.cost(a, b), (rate * ctx.windowMs) / 1000),
    };
  });
}

/** Marks at `from` and at `to`, while the load runs. */
async function markAt(m: ReturnType<typeof meter>, from: number, to: number): Promise<[Mark, Mark]> {
  await sleep(from - now());
  const a = await m.mark();
  await sleep(to - now());
  const b = await m.mark();
  return [a, b];
}

export interface OfferedIngestResult {
  offered: number;
  /** Calls answered per second within the window. */
  achieved: number;
  p50Ms: number;
  p99Ms: number;
  /** Calls not made because too many were outstanding (the server fell behind). */
  skipped: number;
  errors: number;
}

/** PushEvent at a fixed offered rate (open loop); latency from when each call was due. */
export function ingestOpenLoop(ctx: ScenarioContext, rate: number): Promise<OfferedIngestResult> {
  return withService(ctx, "ingest_rate", "warn", async (running) => {
    const target: PushTarget = {
      clients: running.clients,
      namespace: NAMESPACE,
      event: "ingest",
      payload: ctx.payload,
      firstSeq: 0,
    };
    const start = now() + 50;
    const from = start + ctx.warmupMs;
    const to = from + ctx.windowMs;
    const record = await openLoop(target, rate, start, to);
    const p = percentiles(latenciesWithin(record, from, to), [50, 99]);
    return {
      offered: rate,
      achieved: answeredRate(record, from, to),
      p50Ms: p[50],
      p99Ms: p[99],
      skipped: record.skipped,
      errors: record.errors,
    };
  });
}

export interface EndToEndResult {
  rate: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Events pushed in the window that never reached the receiver (within the wait). */
  lost: number;
  /** PushEvent latency at that rate. */
  pushP50Ms: number;
  pushP99Ms: number;
  /** Per event, within the window. */
  perEvent: UnitCosts;
}

/**
 * One webhook; events pushed at `rate` per second (open loop). Latency from
 * when each push was due to when the receiver got the delivery.
 */
export function endToEnd(ctx: ScenarioContext, rate: number): Promise<EndToEndResult> {
  return withService(ctx, "e2e", "warn", async (running) => {
    const [first] = running.clients;
    if (!first) throw new Error("no client");
    await registerWebhooks(first, ctx.receiver, "e2e", 1);
    await ctx.receiver.reset();
    const target: PushTarget = {
      clients: running.clients,
      namespace: NAMESPACE,
      event: "e2e",
      payload: ctx.payload,
      firstSeq: 0,
    };
    const m = meter(running, ctx.receiver);
    const start = now() + 50;
    const from = start + ctx.warmupMs;
    const to = from + ctx.windowMs;
    const marks = markAt(m, from, to);
    const record = await openLoop(target, rate, start, to);
    const [a, b] = await marks;
    if (record.errors > 0) throw new Error(`${record.errors} PushEvent calls failed: ${record.firstError}`);
    const pushed = record.seqs.length;
    const deadline = now() + 15_000;
    while ((await ctx.receiver.count()) < pushed && now() < deadline) await sleep(20);
    const arrivals = await ctx.receiver.take();
    const arrivedAt = new Float64Array(target.firstSeq + Math.floor(((to - start) * rate) / 1000) + 1).fill(NaN);
    for (let i = 0; i < arrivals.seqs.length; i++) {
      const seq = arrivals.seqs[i] ?? -1;
      if (seq >= 0 && seq < arrivedAt.length && Number.isNaN(arrivedAt[seq])) arrivedAt[seq] = arrivals.times[i] ?? NaN;
    }
    const latencies: number[] = [];
    let lost = 0;
    const due = record.startedAt.values();
    const seqs = record.seqs.values();
    for (let i = 0; i < due.length; i++) {
      const t = due[i] ?? NaN;
      if (t < from || t >= to) continue;
      const at = arrivedAt[seqs[i] ?? -1] ?? NaN;
      if (Number.isNaN(at)) lost++;
      else latencies.push(at - t);
    }
    const p = percentiles(latencies, [50, 95, 99, 100]);
    const push = percentiles(latenciesWithin(record, from, to), [50, 99]);
    return {
      rate,
      p50Ms: p[50],
      p95Ms: p[95],
      p99Ms: p[99],
      maxMs: p[100],
      lost,
      pushP50Ms: push[50],
      pushP99Ms: push[99],
      perEvent: perUnit(m.cost(a, b), (rate * ctx.windowMs) / 1000),
    };
  });
}

export interface DeliveryResult {
  /** Deliveries completed per second. */
  rate: number;
  deliveries: number;
  perDelivery: UnitCosts;
}

export interface BacklogResult extends DeliveryResult {
  events: number;
  /** From the commit that queued the backlog to the first and last receipt. */
  firstReceiptSeconds: number;
  seconds: number;
  /** Deliveries not in SUCCEEDED once the server stopped (should be 0). */
  notSucceeded: number;
}

/**
 * `events` events, each for `fanout` webhooks, queued at once (one
 * transaction, as if pushed while no worker ran); the server drains them.
 * Deliveries per second from the commit to the last receipt.
 */
export function backlog(
  ctx: ScenarioContext,
  options: { events: number; fanout: number; logLevel: "warn" | "info"; timeoutMs: number },
): Promise<BacklogResult> {
  const { events, fanout } = options;
  const event = `backlog${fanout}`;
  return withService(ctx, `backlog${fanout}_${options.logLevel}`, options.logLevel, async (running) => {
    const [first] = running.clients;
    if (!first) throw new Error("no client");
    await registerWebhooks(first, ctx.receiver, event, fanout);
    await ctx.receiver.reset();
    const m = meter(running, ctx.receiver);
    const before = await m.mark();
    const start = await seedEvents(running.db, event, events, ctx.payloadPad);
    const atStart = { ...before, cpu: m.cpu(start) };
    const expected = events * fanout;
    const deadline = start + options.timeoutMs;
    while ((await ctx.receiver.count()) < expected && now() < deadline) await sleep(10);
    const end = await m.mark();
    const { times } = await ctx.receiver.take();
    if (times.length < expected) throw new Error(`only ${times.length} of ${expected} deliveries arrived in time`);
    let firstAt = Infinity;
    let lastAt = -Infinity;
    for (const t of times) {
      firstAt = Math.min(firstAt, t);
      lastAt = Math.max(lastAt, t);
    }
    // Commits once the server is gone: its backends report everything as they exit.
    await running.service.stop();
    const gone = now() + 10_000;
    while ((await backendPids(running.db.sql, running.db.name, BENCH_APPLICATION_NAME)).length > 0 && now() < gone) {
      await sleep(20);
    }
    const counters = await databaseCounters(running.db.sql, running.db.name);
    const [row] = await running.db.sql<{ n: number }[]>`
      select count(*)::int as n from webhook_deliveries where status <> 'succeeded'`;
    const seconds = (lastAt - start) / 1000;
    const cost = m.cost(atStart, end, counters);
    return {
      rate: expected / seconds,
      deliveries: expected,
      events,
      firstReceiptSeconds: (firstAt - start) / 1000,
      seconds,
      notSucceeded: row?.n ?? 0,
      perDelivery: perUnit(cost, expected),
    };
  });
}

/**
 * Stores `count` events with their fan-out jobs, as PushEvent does, in one
 * transaction, and returns when it committed (which wakes the worker).
 */
async function seedEvents(db: BenchDatabase, event: string, count: number, pad: string): Promise<number> {
  const chunk = 20_000;
  await db.sql.begin(async (tx) => {
    for (let from = 0; from < count; from += chunk) {
      const to = Math.min(count, from + chunk) - 1;
      await tx`
        with ev as (
          insert into event_records (namespace, event, payload, ttl_seconds, metadata, expires_at)
          select ${NAMESPACE}, ${event}, '{"seq":' || g || ',"data":"' || ${pad}::text || '"}', 86400, '{}'::jsonb,
            now() + interval '1 day'
          from generate_series(${from}::int, ${to}::int) g
          returning id
        )
        select count(*) from graphile_worker.add_jobs(array(
          select (${FANOUT_TASK}, json_build_object('eventId', id), null, null, null, null, null, null)::graphile_worker.job_spec
          from ev
        ))`;
    }
  });
  return now();
}

export interface SteadyResult extends DeliveryResult {
  /** PushEvent calls answered per second within the window. */
  pushed: number;
}

/**
 * Events for `fanout` webhooks pushed continuously while the server delivers
 * them: closed-loop pushes, held back whenever more than `maxOutstanding`
 * deliveries are pushed but not received. Push rate and delivery rate settle
 * where ingest and delivery, sharing the machine, keep up with each other.
 * Deliveries received per second in the window.
 */
export function steady(
  ctx: ScenarioContext,
  options: { fanout: number; maxOutstanding: number },
): Promise<SteadyResult> {
  const { fanout, maxOutstanding } = options;
  const event = `steady${fanout}`;
  return withService(ctx, `steady${fanout}`, "warn", async (running) => {
    const [first] = running.clients;
    if (!first) throw new Error("no client");
    await registerWebhooks(first, ctx.receiver, event, fanout);
    await ctx.receiver.reset();
    const m = meter(running, ctx.receiver);
    const target: PushTarget = {
      clients: running.clients,
      namespace: NAMESPACE,
      event,
      payload: ctx.payload,
      firstSeq: 0,
    };
    const start = now();
    const from = start + ctx.warmupMs;
    const to = from + ctx.windowMs;
    // Received so far, polled from the receiver while the pushes run.
    let received = 0;
    let started = 0;
    const pushing = new AbortController();
    const poller = (async () => {
      while (!pushing.signal.aborted) {
        received = await ctx.receiver.count();
        await sleep(5);
      }
    })();
    const gate = async () => {
      while (started * fanout - received > maxOutstanding && now() < to) await sleep(2);
      started++;
    };
    const marks = markAt(m, from, to);
    const record = await closedLoop(target, ctx.inFlightPerChannel, to, gate).finally(() => {
      pushing.abort();
    });
    await poller;
    const [a, b] = await marks;
    if (record.errors > 0) throw new Error(`${record.errors} PushEvent calls failed: ${record.firstError}`);
    const { times } = await ctx.receiver.take();
    let delivered = 0;
    for (const t of times) if (t >= from && t < to) delivered++;
    return {
      rate: (delivered * 1000) / ctx.windowMs,
      deliveries: delivered,
      pushed: answeredRate(record, from, to),
      perDelivery: perUnit(m.cost(a, b), delivered),
    };
  });
}
