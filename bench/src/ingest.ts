// Ingest and end-to-end latency: PushEvent through the SDK, closed loop or at
// an offered rate.
import { now, sleep } from "./clock.js";
import { answeredRate, closedLoop, latenciesWithin, openLoop, type PushTarget } from "./load.js";
import { markAt, meter, perUnit, type UnitCosts } from "./meter.js";
import { NAMESPACE, registerWebhooks, withService, type ScenarioContext } from "./scenarios.js";
import { percentiles } from "./stats.js";

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
 * `inFlightPerChannel` calls each. The event has no webhook, so nothing is
 * queued: this is the cost of storing events.
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
