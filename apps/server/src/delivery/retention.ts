import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "../db/client.js";
import {
  deleteEndedEvents,
  deleteFailedJobs,
  deleteUnregisteredWebhooks,
  removeEndedPayloads,
  type Deleted,
} from "../db/retention.js";
import type { Logger } from "../observability/logger.js";
import { RETAINED_TABLES, type Metrics } from "../observability/metrics.js";

/** What is kept, and how a sweep goes about removing the rest. */
export interface RetentionSettings {
  /** Events (with deliveries and attempts) older than this (ms), all deliveries ended, are deleted; 0: none. */
  retentionMs: number;
  /** ... and their payloads and response bodies blanked once older than this (ms); 0: none. */
  payloadRetentionMs: number;
  /** Events (or webhooks, or jobs) a batch takes at most: each batch is one short transaction. */
  batchSize: number;
  /** An unregistered webhook goes (with its last delivery) no sooner than this long (ms) after it was unregistered. */
  unregisteredGraceMs: number;
}

export const RETENTION_SWEEP = {
  batchSize: 500,
  /**
   * Long enough that no push still adds a delivery to a webhook it read as
   * registered just before it was unregistered.
   */
  unregisteredGraceMs: 3_600_000,
  /** A sweep stops taking batches after this long (pauses included): the next one, a minute later, goes on. */
  maxRunMs: 45_000,
} as const;

export interface RetentionDeps {
  db: Db;
  logger: Logger;
  metrics: Pick<Metrics, "retentionDeleted" | "payloadsRemoved">;
  settings: RetentionSettings;
}

/** Resolves after `ms`, or at once when `signal` aborts (as the runner's waits do). */
const pause = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  sleep(ms, undefined, signal ? { signal } : {}).catch(() => undefined);

/** Whether retention has anything to do at all. */
export const retentionOn = (s: Pick<RetentionSettings, "retentionMs" | "payloadRetentionMs">) =>
  s.retentionMs > 0 || s.payloadRetentionMs > 0;

/**
 * One sweep: batches of each kind until one comes back short of a full
 * batch (nothing more is due), the time is up or `signal` aborts. Payloads
 * first (when PAYLOAD_RETENTION is shorter than RETENTION: at the same age
 * the events go anyway), then events with their deliveries and attempts,
 * then the unregistered webhooks left without deliveries, then failed jobs.
 * Each batch is counted as it commits.
 */
export async function sweepRetention(
  deps: RetentionDeps,
  signal?: AbortSignal,
): Promise<{ deleted: Deleted; payloadsRemoved: number }> {
  const { db, settings, metrics } = deps;
  const { retentionMs, payloadRetentionMs, batchSize } = settings;
  const deadline = Date.now() + RETENTION_SWEEP.maxRunMs;
  const deleted = Object.fromEntries(RETAINED_TABLES.map((t) => [t, 0])) as Deleted;
  const count = (rows: Partial<Deleted>) => {
    for (const [table, n] of Object.entries(rows) as [keyof Deleted, number][]) {
      deleted[table] += n;
      metrics.retentionDeleted(table, n);
    }
  };
  /**
   * Runs `batch` until it handles fewer than a batch, or the sweep must stop.
   * After each full batch it waits as long as the batch took (a second at
   * most): with a backlog to clear, the sweep has the database half the time.
   */
  const repeat = async (batch: () => Promise<number>) => {
    while (!signal?.aborted && Date.now() < deadline) {
      const started = Date.now();
      if ((await batch()) < batchSize) return;
      await pause(Math.min(Date.now() - started, 1000), signal);
    }
  };
  const ago = (ms: number) => new Date(Date.now() - ms);

  let payloadsRemoved = 0;
  if (payloadRetentionMs > 0 && (retentionMs === 0 || payloadRetentionMs < retentionMs)) {
    await repeat(async () => {
      const n = await removeEndedPayloads(db, ago(payloadRetentionMs), batchSize);
      payloadsRemoved += n;
      metrics.payloadsRemoved(n);
      return n;
    });
  }
  if (retentionMs > 0) {
    await repeat(async () => {
      const rows = await deleteEndedEvents(db, ago(retentionMs), batchSize);
      count(rows);
      return rows.event_records;
    });
    await repeat(async () => {
      const rows = await deleteUnregisteredWebhooks(db, ago(settings.unregisteredGraceMs), batchSize);
      count(rows);
      return rows.webhook_registrations;
    });
    await repeat(async () => {
      const jobs = await deleteFailedJobs(db, ago(retentionMs), batchSize);
      count({ "graphile_worker.jobs": jobs });
      return jobs;
    });
  }
  const total = Object.values(deleted).reduce((a, b) => a + b, 0);
  if (total > 0 || payloadsRemoved > 0) {
    deps.logger.info({ deleted, payloadsRemoved }, "retention removed old rows");
  }
  return { deleted, payloadsRemoved };
}
