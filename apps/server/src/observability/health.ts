import { isDatabaseUnavailable, rootCause } from "../errors.js";
import type { Logger } from "./logger.js";

export type CheckName = "database" | "migrations" | "worker";
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
  intervalMs: number;
  logger: Logger;
}

/**
 * Whether the server can do its work: the database answers, the migrations
 * were applied, the delivery worker runs. The database is checked every
 * `intervalMs`; the others are recorded when they happen. The health
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
  };
  let stopping = false;
  /** Checks whose failure was logged; their recovery is logged too. */
  const reported = new Set<CheckName>();
  let timer: NodeJS.Timeout | undefined;
  const listeners: ((readiness: Readiness) => void)[] = [];

  const readiness = (): Readiness => ({
    ready: !stopping && Object.values(checks).every((c) => c.ok),
    stopping,
    checks: { database: { ...checks.database }, migrations: { ...checks.migrations }, worker: { ...checks.worker } },
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
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        options.pingDatabase(),
        new Promise((_, reject) => {
          timeout = setTimeout(() => {
            reject(new PingTimeout());
          }, PING_TIMEOUT_MS);
        }),
      ]);
      update("database", { ok: true });
    } catch (err) {
      update("database", { ok: false, reason: describeFailure(err) }, err instanceof PingTimeout ? undefined : err);
    } finally {
      clearTimeout(timeout);
    }
  };

  const loop = async () => {
    await checkDatabase();
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

function describeFailure(err: unknown): string {
  if (err instanceof PingTimeout) return `no answer within ${PING_TIMEOUT_MS / 1000}s`;
  const cause = rootCause(err);
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  const suffix = typeof code === "string" ? ` (${code})` : "";
  return isDatabaseUnavailable(err) ? `unreachable${suffix}` : `query failed${suffix}`;
}
