import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { hostname } from "node:os";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { loadDescriptorSet, WebhookServiceService } from "@httpqueue/proto";
import { indexDescriptorSet } from "./api/descriptor-index.js";
import { createAuthInterceptor } from "./api/auth.js";
import { watchTokenFile, type TokenFile } from "./api/token-file.js";
import { addReflectionService, REFLECTION_SERVICE_NAMES } from "./api/reflection.js";
import { guardedService } from "./api/request-guard.js";
import { createWebhookService } from "./api/service.js";
import { createWatchHub } from "./api/watch.js";
import { prepareSecrets } from "./secrets/start.js";
import type { Config } from "./config.js";
import { createDatabase } from "./db/client.js";
import { savePushSettings } from "./db/events.js";
import { migrateDatabase } from "./db/migrate.js";
import { oldestDueJobSeconds } from "./db/queue-health.js";
import { ping, readDatabaseStats } from "./db/stats.js";
import { createHttpClient } from "./delivery/http-client.js";
import { RETENTION_SWEEP, retentionOn } from "./delivery/retention.js";
import { createTasks } from "./delivery/tasks.js";
import { startHealthSweep, webhookGone } from "./delivery/webhook-health.js";
import { startWorker, type WorkerOptions } from "./delivery/worker.js";
import { throttle } from "./observability/db-stats.js";
import { addHealthService } from "./observability/grpc-health.js";
import { createHealthMonitor } from "./observability/health.js";
import { startHttpServer } from "./observability/http-server.js";
import type { Logger } from "./observability/logger.js";
import { createMetrics } from "./observability/metrics.js";
import { TokenSet } from "./tokens.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };
export const USER_AGENT = `httpqueue/${version}`;

export interface App {
  /** host:port the gRPC server listens on. */
  address: string;
  port: number;
  /** host:port of the HTTP server: /healthz, /readyz, /metrics. */
  httpAddress: string;
  httpPort: number;
  /**
   * Reads API_TOKENS_FILE again now (`trigger`, such as "SIGHUP", is logged): true when its tokens are in
   * use, false when it was refused (the tokens in use are kept), undefined without one.
   */
  reloadApiTokens(trigger?: string): Promise<boolean | undefined>;
  /** Stops taking RPCs, lets running deliveries finish (bounded), closes everything. */
  stop(): Promise<void>;
  /** Resolves once stopped; rejects if the worker died and could not be started again. */
  readonly done: Promise<void>;
}

/** The configuration with the database settled (given, or the embedded one). */
export type AppConfig = Omit<Config, "databaseUrl"> & {
  databaseUrl: string;
  /** Tests only: a shorter reconciliation than the worker's (a minute, for deliveries a minute overdue). */
  reconcile?: WorkerOptions["reconcile"];
  /**
   * Tests only: retention's sweep queued by each server every `intervalMs`
   * (instead of by the cron, once a minute), with smaller batches and grace.
   */
  retentionSweep?: { intervalMs: number; batchSize?: number; unregisteredGraceMs?: number };
};

/** Longest a statement of the health checks or metrics may run. */
const MONITOR_STATEMENT_TIMEOUT_MS = 5_000;

/**
 * Serves the health and metrics endpoints, migrates the database, starts the
 * worker, then serves gRPC: the API, grpc.health.v1 and reflection.
 */
export async function startApp(config: AppConfig, logger: Logger): Promise<App> {
  const metrics = createMetrics({ version, eventLabelLimit: config.metricsEventLabelLimit });
  // Connections of their own for health checks and metrics queries, so that a
  // pool busy with RPCs and deliveries cannot make the server look down. Two:
  // a slow metrics query (one at a time) never delays a health check (one at a time).
  const monitorDb = createDatabase({
    url: config.databaseUrl,
    poolSize: 2,
    applicationName: "httpqueue-monitor",
    statementTimeoutMs: MONITOR_STATEMENT_TIMEOUT_MS,
  });
  const health = createHealthMonitor({
    pingDatabase: () => ping(monitorDb),
    oldestDueJobSeconds: () => oldestDueJobSeconds(monitorDb),
    queueStallAfterMs: config.queueStallAfterMs,
    intervalMs: config.healthCheckIntervalMs,
    logger,
  });
  metrics.setReadiness(health.readiness);

  // What start has opened, closed in reverse order by stop() or a failed start.
  const closers: (() => Promise<void>)[] = [() => monitorDb.$client.end({ timeout: 5 })];
  const closeAll = async () => {
    health.stop();
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) => {
        logger.warn({ err }, "error while closing");
      });
    }
  };

  try {
    // Up before the migrations: liveness answers, and readiness says why not, while they run.
    const httpServer = await startHttpServer({
      host: config.httpHost,
      port: config.httpPort,
      readiness: health.readiness,
      registry: metrics.registry,
      metricsToken: config.metricsToken,
      logger,
    });
    closers.push(() => httpServer.close());

    await migrateDatabase(config.databaseUrl, logger);
    health.migrationsApplied();
    metrics.setDatabaseStats(throttle(() => readDatabaseStats(monitorDb), config.metricsQueryIntervalMs, logger));

    const db = createDatabase({ url: config.databaseUrl, poolSize: config.databasePoolSize });
    closers.push(() => db.$client.end({ timeout: 5 }));
    // Before anything signs or stores a secret: plain ones are sealed (with SECRETS_KEY), or the start is refused.
    const secrets = await prepareSecrets({ sql: db.$client, keys: config.secretsKeys, logger });
    const http = createHttpClient({
      // Enough for every webhook's attempts in flight, were they all on one origin.
      connections: config.workerConcurrency * config.webhookMaxInFlight,
      responseBodyLimitBytes: config.responseBodyLimitBytes,
      destinations: config.destinations,
    });
    closers.push(() => http.close());
    // Pushes made in SQL (httpqueue.push_event) follow this server's settings.
    await savePushSettings(db, {
      defaultTtlSeconds: config.defaultTtlSeconds,
      maxTtlSeconds: config.maxTtlSeconds,
      maxPayloadBytes: config.maxPayloadBytes,
      maxAttempts: config.maxAttempts,
      idempotencyWindowSeconds: config.idempotencyWindowSeconds,
    });

    const healthDeps = { db, config, logger, metrics };
    const tasks = createTasks({
      db,
      http,
      logger,
      metrics,
      webhookGone: (webhookId) => webhookGone(healthDeps, webhookId),
      userAgent: USER_AGENT,
      secrets,
      maxAttempts: config.maxAttempts,
      maxInFlight: config.webhookMaxInFlight,
      retention: {
        retentionMs: config.retentionMs,
        payloadRetentionMs: config.payloadRetentionMs,
        batchSize: config.retentionSweep?.batchSize ?? RETENTION_SWEEP.batchSize,
        unregisteredGraceMs: config.retentionSweep?.unregisteredGraceMs ?? RETENTION_SWEEP.unregisteredGraceMs,
      },
      policy: {
        schedule: config.retrySchedule,
        jitter: config.retryJitter,
        retryAfterMaxMs: config.retryAfterMaxMs,
      },
    });
    const worker = await startWorker({
      databaseUrl: config.databaseUrl,
      concurrency: config.workerConcurrency,
      pollIntervalMs: config.workerPollIntervalMs,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      logger,
      onStatus: (status) => {
        health.setWorker(status.running ? { ok: true } : { ok: false, reason: status.reason });
      },
      onPoolStopping: (poolId) => {
        tasks.drain(poolId);
      },
      onReconciled: (webhooks) => {
        metrics.webhooksReconciled(webhooks);
      },
      ...(config.reconcile ? { reconcile: config.reconcile } : {}),
      ...(retentionOn(config) ? { retention: { intervalMs: config.retentionSweep?.intervalMs } } : {}),
      taskList: tasks.taskList,
    });
    closers.push(() => worker.stop());
    const healthSweep = startHealthSweep(healthDeps);
    closers.push(() => healthSweep.stop());

    // With API_TOKENS_FILE the interceptor is there even while no token is, so that a reload can add the first.
    const apiTokens = new TokenSet([...config.apiTokens, ...(config.apiTokensFile?.tokens ?? [])]);
    const authOn = config.apiTokens.length > 0 || config.apiTokensFile !== undefined;
    if (authOn) metrics.apiTokensInUse(apiTokens.size);
    let tokenFile: TokenFile | undefined;
    if (config.apiTokensFile) {
      tokenFile = watchTokenFile({
        path: config.apiTokensFile.path,
        fixed: config.apiTokens,
        initial: config.apiTokensFile.tokens,
        tokens: apiTokens,
        logger,
        onReload: (result, inUse) => {
          metrics.apiTokensReloaded(result, inUse);
        },
      });
      const watching = tokenFile;
      closers.push(() => {
        watching.stop();
        return Promise.resolve();
      });
    }
    const server = new Server({
      // Room for the largest payload plus the rest of a PushEvent request.
      "grpc.max_receive_message_length": config.maxPayloadBytes + 1024 * 1024,
      interceptors: authOn
        ? [
            createAuthInterceptor(apiTokens, logger, (path) => {
              metrics.rpcRefused(path);
            }),
          ]
        : [],
    });
    const watch = createWatchHub({ db, server: `${hostname()}/${process.pid}/${randomUUID()}`, logger, metrics });
    server.addService(
      guardedService(WebhookServiceService),
      createWebhookService({ db, config, logger, metrics, watch, secrets }),
    );
    // Health and reflection are services apart from the API: an auth interceptor can let them through.
    const grpcHealth = addHealthService(server, health);
    const reflection = addReflectionService(server, indexDescriptorSet(loadDescriptorSet()), [
      "httpqueue.v1.WebhookService",
      "grpc.health.v1.Health",
      ...REFLECTION_SERVICE_NAMES,
    ]);
    const host = config.grpcHost.includes(":") ? `[${config.grpcHost}]` : config.grpcHost;
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${config.grpcPort}`, serverCredentials(config.tls), (err, bound) => {
        if (err) {
          reject(
            new Error(`cannot listen on ${host}:${config.grpcPort} (GRPC_HOST/GRPC_PORT): ${err.message}`, {
              cause: err,
            }),
          );
        } else resolve(bound);
      });
    });
    // Only now, with the gRPC port bound, can the server be ready; the first
    // database check completes before this returns, so health starts out right.
    await health.start();

    closers.push(async () => {
      // Streams that only end when the client ends them would hold the shutdown.
      grpcHealth.endWatches();
      reflection.endStreams();
      await watch.stop();
      await shutdownServer(server, config.shutdownTimeoutMs);
    });

    let stopping: Promise<void> | undefined;
    return {
      address: `${host}:${port}`,
      port,
      httpAddress: httpServer.address,
      httpPort: httpServer.port,
      done: worker.done,
      reloadApiTokens: async (trigger) => (stopping || !tokenFile ? undefined : tokenFile.reload(trigger)),
      stop: () => (stopping ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** TLS when configured, requiring client certificates when a client CA is given. */
function serverCredentials(tls: AppConfig["tls"]): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ cert_chain: tls.cert, private_key: tls.key }],
    tls.clientCa !== undefined,
  );
}

/** Stops accepting calls and waits for running ones, forcing them closed after `timeoutMs`. */
function shutdownServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, timeoutMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
