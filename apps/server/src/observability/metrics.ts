import { WebhookServiceService } from "@httpqueue/proto";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Readiness } from "./health.js";

/** What the queue and webhook gauges show, as db/stats.ts reads it from the database. */
export interface QueueCounts {
  /** Due and waiting for a worker. */
  pending: number;
  /** Waiting for their run_at (retries). */
  scheduled: number;
  /** Running (or held by a worker that died, until it is unlocked). */
  locked: number;
  /** Gave up: the task threw on every allowed attempt. */
  failed: number;
}

export interface DatabaseStats {
  /** By task identifier; every httpqueue task is present, with zeros if it has no job. */
  queue: Record<string, QueueCounts>;
  webhooks: { active: number; inactive: number };
  /** Deliveries that have not ended: due (their attempt's time has come), or scheduled for later. */
  deliveries: { due: number; scheduled: number };
  /** How long the oldest due delivery has been due, in seconds; 0 when none is. */
  oldestDueSeconds: number;
  /** How long the oldest due job of httpqueue's tasks has waited for a worker, in seconds; 0 when none is due. */
  oldestDueJobSeconds: number;
  /** Webhooks a server delivers to right now (rows of webhook_runners). */
  delivering: number;
}

/**
 * The label value that stands for every namespace/event pair past the limit.
 * Namespaces and events start with a letter or digit, so no real one is "_other".
 */
export const OTHER = "_other";

export const DELIVERY_OUTCOMES = ["succeeded", "retrying", "failed", "expired", "cancelled"] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

export interface MetricsOptions {
  version: string;
  /** Distinct namespace/event pairs that get labels of their own. */
  eventLabelLimit: number;
}

/**
 * The Prometheus metrics of one server. Each app has its own registry (not
 * prom-client's global one), so that several servers in one process do not
 * collide. Labels are bounded: no URL, id or free-form text becomes a label
 * value, except namespace/event pairs, of which only the first
 * `eventLabelLimit` are kept.
 */
export interface Metrics {
  readonly registry: Registry;
  /** An RPC of httpqueue.v1.WebhookService started. */
  rpcStarted(method: string): void;
  /** It finished with `code` (a grpc status name) after `seconds`. */
  rpcHandled(method: string, code: string, seconds: number): void;
  /** A call ("/package.Service/Method") was refused for want of a valid token, before any handler ran. */
  rpcRefused(path: string): void;
  eventPushed(namespace: string, event: string, duplicate: boolean): void;
  webhookRegistered(): void;
  /** A delivery reached `outcome` (for "retrying": an attempt failed and another is scheduled). */
  deliveryOutcome(outcome: DeliveryOutcome, count?: number): void;
  /** One HTTP attempt: its status code (undefined when no response came) and how long it took. */
  attemptFinished(result: AttemptResult, seconds: number): void;
  /** A delivery succeeded, `seconds` after its event was pushed. */
  deliverySucceeded(seconds: number): void;
  /** A webhook was deactivated by the server: the receiver answered 410 Gone, or failed for too long. */
  webhookDisabled(reason: AutoDisableReason): void;
  /** A due delivery waited for its webhook's rate limit or pace, or for a pause the receiver asked for: no attempt used. */
  deliveryPostponed(reason: PostponeReason): void;
  /** The periodic check queued jobs for `count` webhooks whose overdue deliveries had none. */
  webhooksReconciled(count: number): void;
  /** API_TOKENS_FILE was read again: its tokens taken ("ok") or refused ("error"); `inUse` are accepted after it. */
  apiTokensReloaded(result: TokenReloadResult, inUse: number): void;
  /** Tokens the API accepts now (API_TOKENS and API_TOKENS_FILE together). */
  apiTokensInUse(count: number): void;
  /** WatchDeliveries streams open on this server. */
  watchers(count: number): void;
  /** A WatchDeliveries stream was ended by the server: it fell behind, or the changes could not be followed. */
  watcherEnded(reason: WatcherEndReason): void;
  /** Counts `send` as in flight while it runs. */
  inFlight<T>(send: () => Promise<T>): Promise<T>;
  /** Retention deleted `count` rows of `table`. */
  retentionDeleted(table: RetainedTable, count: number): void;
  /** Retention blanked the payloads (and response bodies) of `count` events. */
  payloadsRemoved(count: number): void;
  /** Where queue depth and webhook counts come from, read when scraped. */
  setDatabaseStats(source: () => Promise<DatabaseStats | undefined>): void;
  setReadiness(source: () => Readiness): void;
}

export const TOKEN_RELOAD_RESULTS = ["ok", "error"] as const;
export type TokenReloadResult = (typeof TOKEN_RELOAD_RESULTS)[number];

/** What retention deletes rows of (graphile_worker.jobs: jobs of httpqueue's tasks that failed for good). */
export const RETAINED_TABLES = [
  "event_records",
  "webhook_deliveries",
  "delivery_attempts",
  "webhook_registrations",
  "webhook_runners",
  "graphile_worker.jobs",
] as const;
export type RetainedTable = (typeof RETAINED_TABLES)[number];

export const WATCHER_END_REASONS = ["behind", "unavailable", "shutdown"] as const;
export type WatcherEndReason = (typeof WATCHER_END_REASONS)[number];

export const AUTO_DISABLE_REASONS = ["gone", "failing"] as const;
export type AutoDisableReason = (typeof AUTO_DISABLE_REASONS)[number];
export const POSTPONE_REASONS = ["rate_limit", "paused"] as const;
export type PostponeReason = (typeof POSTPONE_REASONS)[number];

/** "2xx" … "5xx" by status code, "timeout", or "error" when no response came. */
export type AttemptResult = `${number}xx` | "timeout" | "error" | "blocked";

export function attemptResult(statusCode: number | undefined, timedOut: boolean, blocked = false): AttemptResult {
  if (blocked) return "blocked";
  if (statusCode !== undefined) return `${Math.floor(statusCode / 100)}xx`;
  return timedOut ? "timeout" : "error";
}

const RPC_SERVICE = "httpqueue.v1.WebhookService";
/** "/httpqueue.v1.WebhookService/PushEvent" → "PushEvent", for every method of the API. */
const API_METHODS = new Map<string, string>(
  Object.values(WebhookServiceService).map((d) => [d.path, d.path.slice(d.path.lastIndexOf("/") + 1)]),
);
/** The API's methods that stream their responses. */
const STREAMING_METHODS = new Set(
  Object.values(WebhookServiceService)
    .filter((d) => d.responseStream)
    .map((d) => d.path.slice(d.path.lastIndexOf("/") + 1)),
);
const rpcLabels = (method: string) => ({
  grpc_type: STREAMING_METHODS.has(method) ? "server_stream" : "unary",
  grpc_service: RPC_SERVICE,
  grpc_method: method,
});
const QUEUE_STATES = ["pending", "scheduled", "locked", "failed"] as const;

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: "httpqueue_build_info",
    help: "Always 1; the version label says which httpqueue runs.",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version: options.version }, 1);

  // The names and labels of go-grpc-prometheus, so that existing gRPC dashboards work.
  const rpcStarted = new Counter({
    name: "grpc_server_started_total",
    help: "RPCs started on the server.",
    labelNames: ["grpc_type", "grpc_service", "grpc_method"],
    registers: [registry],
  });
  const rpcHandled = new Counter({
    name: "grpc_server_handled_total",
    help: "RPCs completed on the server, by status code.",
    labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
    registers: [registry],
  });
  const rpcSeconds = new Histogram({
    name: "grpc_server_handling_seconds",
    help: "Time to handle an RPC, until the response is sent.",
    labelNames: ["grpc_type", "grpc_service", "grpc_method"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });

  const webhooksRegistered = new Counter({
    name: "httpqueue_webhooks_registered_total",
    help: "Webhooks registered through this server.",
    registers: [registry],
  });
  const eventsPushed = new Counter({
    name: "httpqueue_events_pushed_total",
    help: `Events stored, by namespace and event (pairs past the label limit are "${OTHER}").`,
    labelNames: ["namespace", "event"],
    registers: [registry],
  });
  const eventsDeduplicated = new Counter({
    name: "httpqueue_events_deduplicated_total",
    help: "Pushes answered with an earlier event's id, because their idempotency key was used before.",
    registers: [registry],
  });
  const deliveries = new Counter({
    name: "httpqueue_deliveries_total",
    help: "Deliveries reaching an outcome: succeeded, failed, expired, cancelled; retrying counts failed attempts followed by another.",
    labelNames: ["outcome"],
    registers: [registry],
  });
  // Every outcome exported from the start, so that rate() and ratios work before the first failure.
  for (const outcome of DELIVERY_OUTCOMES) deliveries.inc({ outcome }, 0);
  const webhooksDisabled = new Counter({
    name: "httpqueue_webhooks_disabled_total",
    help: "Webhooks deactivated by the server, by reason: gone (410 answer), failing (AUTO_DISABLE_AFTER).",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of AUTO_DISABLE_REASONS) webhooksDisabled.inc({ reason }, 0);
  const postponed = new Counter({
    name: "httpqueue_deliveries_postponed_total",
    help: "Due deliveries held back, each time one is (no attempt used, not a failure), by reason: rate_limit (the webhook's rate limit or pace), paused (Retry-After).",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of POSTPONE_REASONS) postponed.inc({ reason }, 0);
  const reconciled = new Counter({
    name: "httpqueue_deliveries_reconciled_total",
    help: "Webhooks with overdue deliveries and no job, found by the periodic check and queued again (each is a job that was lost or never queued).",
    registers: [registry],
  });
  const tokenReloads = new Counter({
    name: "httpqueue_api_tokens_reloads_total",
    help: "Reads of API_TOKENS_FILE after the start (a change, or SIGHUP), by result: ok (its tokens taken), error (unreadable, empty or a bad token: the tokens in use kept).",
    labelNames: ["result"],
    registers: [registry],
  });
  for (const result of TOKEN_RELOAD_RESULTS) tokenReloads.inc({ result }, 0);
  const tokensInUse = new Gauge({
    name: "httpqueue_api_tokens",
    help: "Distinct API tokens accepted now (API_TOKENS and API_TOKENS_FILE); 0: the API is open (neither is set), or every call is refused (API_TOKENS_FILE holds none).",
    registers: [registry],
  });
  const watchers = new Gauge({
    name: "httpqueue_watchers",
    help: "WatchDeliveries streams open on this server.",
    registers: [registry],
  });
  const watchersEnded = new Counter({
    name: "httpqueue_watchers_ended_total",
    help: "WatchDeliveries streams the server ended, by reason: behind (the client read too slowly; WATCH_BUFFER), unavailable (the database connection that follows changes was lost), shutdown.",
    labelNames: ["reason"],
    registers: [registry],
  });
  for (const reason of WATCHER_END_REASONS) watchersEnded.inc({ reason }, 0);
  const attemptSeconds = new Histogram({
    name: "httpqueue_delivery_attempt_duration_seconds",
    help: "Duration of each HTTP delivery attempt, by result (2xx, 4xx, 5xx, ..., timeout, error, blocked).",
    labelNames: ["result"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const endToEndSeconds = new Histogram({
    name: "httpqueue_delivery_end_to_end_seconds",
    help: "Time from an event's push to its successful delivery to one webhook, retries included.",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 7200, 21600, 86400],
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: "httpqueue_deliveries_in_flight",
    help: "HTTP delivery attempts running now on this server.",
    registers: [registry],
  });
  const retentionDeleted = new Counter({
    name: "httpqueue_retention_deleted_total",
    help: "Rows deleted by retention's sweeps on this server (RETENTION), by table.",
    labelNames: ["table"],
    registers: [registry],
  });
  for (const table of RETAINED_TABLES) retentionDeleted.inc({ table }, 0);
  const payloadsRemoved = new Counter({
    name: "httpqueue_retention_payloads_removed_total",
    help: "Events whose payload (and response bodies) retention's sweeps on this server blanked (PAYLOAD_RETENTION).",
    registers: [registry],
  });

  // Read from the database when scraped (throttled by the source).
  let databaseStats: (() => Promise<DatabaseStats | undefined>) | undefined;
  const latestStats = async () => (databaseStats ? databaseStats() : undefined);
  /**
   * A gauge read from the database when scraped: `values` gives its samples
   * (by label values) from the latest statistics; none while they cannot be read.
   */
  const databaseGauge = (
    name: string,
    help: string,
    labelNames: string[],
    values: (stats: DatabaseStats) => [Record<string, string>, number][],
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        this.reset();
        const stats = await latestStats();
        if (stats) for (const [labels, value] of values(stats)) this.set(labels, value);
      },
    });
  databaseGauge(
    "httpqueue_queue_jobs",
    "Jobs in the queue by task and state: pending (due, waiting for a worker), scheduled (wake-ups for retries), locked (running), failed (gave up after repeated errors).",
    ["task", "state"],
    (stats) =>
      Object.entries(stats.queue).flatMap(([task, counts]) =>
        QUEUE_STATES.map((state): [Record<string, string>, number] => [{ task, state }, counts[state]]),
      ),
  );
  databaseGauge(
    "httpqueue_deliveries_waiting",
    "Deliveries that have not ended: due (waiting for their attempt), or scheduled (retries waiting for their time).",
    ["state"],
    (stats) => [
      [{ state: "due" }, stats.deliveries.due],
      [{ state: "scheduled" }, stats.deliveries.scheduled],
    ],
  );
  databaseGauge(
    "httpqueue_oldest_due_delivery_seconds",
    "How long the oldest due delivery has waited for its attempt (0 when none is due).",
    [],
    (stats) => [[{}, stats.oldestDueSeconds]],
  );
  databaseGauge(
    "httpqueue_queue_oldest_due_seconds",
    "How long the oldest due job of httpqueue's tasks has waited for a worker (0 when none is due); QUEUE_STALL_AFTER bounds it for readiness.",
    [],
    (stats) => [[{}, stats.oldestDueJobSeconds]],
  );
  databaseGauge(
    "httpqueue_webhooks_delivering",
    "Webhooks that a server delivers to right now, across all servers on the database.",
    [],
    (stats) => [[{}, stats.delivering]],
  );
  databaseGauge(
    "httpqueue_webhooks",
    "Registered webhooks (unregistered ones excluded), active or inactive.",
    ["state"],
    (stats) => [
      [{ state: "active" }, stats.webhooks.active],
      [{ state: "inactive" }, stats.webhooks.inactive],
    ],
  );

  let readiness: (() => Readiness) | undefined;
  new Gauge({
    name: "httpqueue_ready",
    help: "1 when the server is ready (database reachable, migrations applied, worker running, jobs taken), else 0.",
    registers: [registry],
    collect() {
      this.set(readiness?.().ready ? 1 : 0);
    },
  });
  new Gauge({
    name: "httpqueue_health_check",
    help: "1 when the named readiness check passes, else 0.",
    labelNames: ["check"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [check, result] of Object.entries(readiness?.().checks ?? {})) this.set({ check }, result.ok ? 1 : 0);
    },
  });

  const labelledPairs = new Set<string>();
  const eventLabels = (namespace: string, event: string) => {
    const key = `${namespace}\n${event}`;
    if (labelledPairs.has(key)) return { namespace, event };
    if (labelledPairs.size < options.eventLabelLimit) {
      labelledPairs.add(key);
      return { namespace, event };
    }
    return { namespace: OTHER, event: OTHER };
  };

  return {
    registry,
    rpcStarted(method) {
      rpcStarted.inc(rpcLabels(method));
    },
    rpcHandled(method, code, seconds) {
      const labels = rpcLabels(method);
      rpcHandled.inc({ ...labels, grpc_code: code });
      rpcSeconds.observe(labels, seconds);
    },
    rpcRefused(path) {
      // Only the API's own methods: the label set stays bounded.
      const method = API_METHODS.get(path);
      if (method === undefined) return;
      const labels = rpcLabels(method);
      rpcStarted.inc(labels);
      rpcHandled.inc({ ...labels, grpc_code: "UNAUTHENTICATED" });
    },
    eventPushed(namespace, event, duplicate) {
      if (duplicate) eventsDeduplicated.inc();
      else eventsPushed.inc(eventLabels(namespace, event));
    },
    webhookRegistered() {
      webhooksRegistered.inc();
    },
    deliveryOutcome(outcome, count = 1) {
      if (count > 0) deliveries.inc({ outcome }, count);
    },
    webhookDisabled(reason) {
      webhooksDisabled.inc({ reason });
    },
    deliveryPostponed(reason) {
      postponed.inc({ reason });
    },
    webhooksReconciled(count) {
      if (count > 0) reconciled.inc(count);
    },
    apiTokensReloaded(result, inUse) {
      tokenReloads.inc({ result });
      tokensInUse.set(inUse);
    },
    apiTokensInUse(count) {
      tokensInUse.set(count);
    },
    watchers(count) {
      watchers.set(count);
    },
    watcherEnded(reason) {
      watchersEnded.inc({ reason });
    },
    attemptFinished(result, seconds) {
      attemptSeconds.observe({ result }, seconds);
    },
    deliverySucceeded(seconds) {
      endToEndSeconds.observe(Math.max(0, seconds));
    },
    retentionDeleted(table, count) {
      if (count > 0) retentionDeleted.inc({ table }, count);
    },
    payloadsRemoved(count) {
      if (count > 0) payloadsRemoved.inc(count);
    },
    async inFlight(send) {
      inFlight.inc();
      try {
        return await send();
      } finally {
        inFlight.dec();
      }
    },
    setDatabaseStats(source) {
      databaseStats = source;
    },
    setReadiness(source) {
      readiness = source;
    },
  };
}
