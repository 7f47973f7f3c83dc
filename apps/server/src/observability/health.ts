import { isDatabaseUnavailable, rootCause } from "../errors.js";
import type { Logger } from "./logger.js";

export type CheckName = "database" | "migrations" | "worker" | "queue";
export interface CheckResult {
  ok: boolean;
  /** Why it fails: short, and never an error's message (those may quote connection details). */
  reason?: string;
}
export interface Readiness {
  /** Every check passes and the server is not stopping. */
  ready: boolean;
  stopping: boolean;
  checks: Record<CheckName, CheckResult>;
}

export interface HealthMonitorOptions {
  /** Resolves when the database answers a query. */
  pingDatabase(): Promise<void>;
  /** How long the oldest due job of httpqueue's tasks has waited, in seconds (0: none is due). */
  oldestDueJobSeconds(): Promise<number>;
  /** The queue check fails once the oldest due job has waited this long (ms); 0: the check is off. */
  queueStallAfterMs: number;
  intervalMs: number;
  logger: Logger;
}

/**
 * Whether the server can do its work: the database answers, the migrations
 * were applied, the delivery worker runs, and jobs are taken (no due job has
 * waited longer than `queueStallAfterMs`: workers that run but take nothing,
 * on this server or the others, show here). The database and the queue are
 * checked every `intervalMs`; the others are recorded when they happen. The health
 * endpoints (gRPC and HTTP) report the last result, so that probes, however
 * frequent, cost the database nothing.
 */
export interface HealthMonitor {
  readonly readiness: () => Readiness;
  /** Called whenever the readiness changes. */
  onChange(listener: (readiness: Readiness) => void): void;
  migrationsApplied(): void;
  /** The worker's state, as it changes: the worker check passes while it runs. */
  setWorker(result: CheckResult): void;
  /** Checks the database now, then every interval. */
  start(): Promise<void>;
  /** Not ready from now on (the server is shutting down); stops checking. */
  stop(): void;
}

/** A database that has not answered by then counts as unreachable. */
const PING_TIMEOUT_MS = 5_000;

export function createHealthMonitor(options: HealthMonitorOptions): HealthMonitor {
  const logger = options.logger.child({ component: "health" });
  const checks: Record<CheckName, CheckResult> = {
    database: { ok: false, reason: "not checked yet" },
    migrations: { ok: false, reason: "not applied yet" },
    worker: { ok: false, reason: "not started yet" },
    queue: options.queueStallAfterMs > 0 ? { ok: false, reason: "not checked yet" } : { ok: true },
  };
  let stopping = false;
  /** Checks whose failure was logged; their recovery is logged too. */
  const reported = new Set<CheckName>();
  let timer: NodeJS.Timeout | undefined;
  const listeners: ((readiness: Readiness) => void)[] = [];

  const readiness = (): Readiness => ({
    ready: !stopping && Object.values(checks).every((c) => c.ok),
    stopping,
    checks: {
      database: { ...checks.database },
      migrations: { ...checks.migrations },
      worker: { ...checks.worker },
      queue: { ...checks.queue },
    },
  });

  const update = (name: CheckName, result: CheckResult, err?: unknown) => {
    const previous = checks[name];
    if (previous.ok === result.ok && previous.reason === result.reason) return;
    const wasReady = readiness().ready;
    checks[name] = result;
    if (!result.ok && !stopping) {
      logger.warn({ check: name, reason: result.reason, err }, `health check failing: ${name}`);
      reported.add(name);
    } else if (result.ok && reported.delete(name)) {
      logger.info({ check: name }, `health check passing again: ${name}`);
    }
    const now = readiness();
    if (now.ready !== wasReady) logger.info({ ready: now.ready }, now.ready ? "ready" : "not ready");
    for (const listener of listeners) listener(now);
  };

  const checkDatabase = async () => {
    try {
      await withTimeout(options.pingDatabase());
      update("database", { ok: true });
    } catch (err) {
      update("database", { ok: false, reason: describeFailure(err) }, err instanceof PingTimeout ? undefined : err);
    }
  };

  const checkQueue = async () => {
    const bound = options.queueStallAfterMs;
    try {
      const seconds = await withTimeout(options.oldestDueJobSeconds());
      if (seconds * 1000 < bound) update("queue", { ok: true });
      else {
        const waited = formatDuration(Math.floor(seconds) * 1000);
        const reason = `the oldest due job has waited ${waited} (QUEUE_STALL_AFTER ${formatDuration(bound)})`;
        update("queue", { ok: false, reason });
      }
    } catch (err) {
      update("queue", { ok: false, reason: describeFailure(err) }, err instanceof PingTimeout ? undefined : err);
    }
  };

  const loop = async () => {
    await checkDatabase();
    // With the database down, its check says why; the queue keeps its last result.
    if (options.queueStallAfterMs > 0 && checks.database.ok && !stopping) await checkQueue();
    if (stopping) return;
    timer = setTimeout(() => void loop(), options.intervalMs);
    timer.unref();
  };

  return {
    readiness,
    onChange(listener) {
      listeners.push(listener);
    },
    migrationsApplied() {
      update("migrations", { ok: true });
    },
    setWorker(result) {
      update("worker", result);
    },
    start: loop,
    stop() {
      if (stopping) return;
      stopping = true;
      clearTimeout(timer);
      logger.info({ ready: false }, "not ready: shutting down");
      const now = readiness();
      for (const listener of listeners) listener(now);
    },
  };
}

class PingTimeout extends Error {
  override name = "PingTimeout";
}

async function withTimeout<T>(query: Promise<T>): Promise<T> {
  let timeout: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      query,
      new Promise<never>((_, reject) => {
        timeout = setTimeout(() => {
          reject(new PingTimeout());
        }, PING_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timeout);
  }
}

/** "3m12s", "2m", "1.5s", "250ms": the duration grammar of the settings. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let rest = ms / 1000;
  const hours = Math.floor(rest / 3600);
  rest -= hours * 3600;
  const minutes = Math.floor(rest / 60);
  rest -= minutes * 60;
  const seconds = Number(rest.toFixed(3));
  return (hours ? `${hours}h` : "") + (minutes ? `${minutes}m` : "") + (seconds ? `${seconds}s` : "");
}

function describeFailure(err: unknown): string {
  if (err instanceof PingTimeout) return `no answer within ${PING_TIMEOUT_MS / 1000}s`;
  const cause = rootCause(err);
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  const suffix = typeof code === "string" ? ` (${code})` : "";
  return isDatabaseUnavailable(err) ? `unreachable${suffix}` : `query failed${suffix}`;
}
