import { createRequire } from "node:module";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { WebhookServiceService } from "@httpqueue/proto";
import { createWebhookService } from "./api/service.js";
import type { Config } from "./config.js";
import { createDatabase } from "./db/client.js";
import { migrateDatabase } from "./db/migrate.js";
import { createHttpClient } from "./delivery/http-client.js";
import { createTaskList } from "./delivery/tasks.js";
import { startWorker } from "./delivery/worker.js";
import type { Logger } from "./observability/logger.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };
export const USER_AGENT = `httpqueue/${version}`;

export interface App {
  /** host:port the gRPC server listens on. */
  address: string;
  port: number;
  /** Stops taking RPCs, lets running deliveries finish (bounded), closes everything. */
  stop(): Promise<void>;
  /** Rejects if the worker dies. */
  readonly done: Promise<void>;
}

/** The configuration with the database settled (given, or the embedded one). */
export type AppConfig = Omit<Config, "databaseUrl"> & { databaseUrl: string };

/** Migrates the database, starts the worker, then serves gRPC. */
export async function startApp(config: AppConfig, logger: Logger): Promise<App> {
  await migrateDatabase(config.databaseUrl, logger);
  const db = createDatabase({ url: config.databaseUrl, poolSize: config.databasePoolSize });
  const http = createHttpClient({
    connections: config.workerConcurrency,
    responseBodyLimitBytes: config.responseBodyLimitBytes,
  });
  const closeClients = async () => {
    await http.close();
    await db.$client.end({ timeout: 5 });
  };

  let worker;
  try {
    worker = await startWorker({
      databaseUrl: config.databaseUrl,
      concurrency: config.workerConcurrency,
      pollIntervalMs: config.workerPollIntervalMs,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      logger,
      taskList: createTaskList({
        db,
        http,
        logger,
        userAgent: USER_AGENT,
        maxAttempts: config.maxAttempts,
        policy: {
          schedule: config.retrySchedule,
          jitter: config.retryJitter,
          retryAfterMaxMs: config.retryAfterMaxMs,
        },
      }),
    });
  } catch (err) {
    await closeClients();
    throw err;
  }

  const server = new Server({
    // Room for the largest payload plus the rest of a PushEvent request.
    "grpc.max_receive_message_length": config.maxPayloadBytes + 1024 * 1024,
  });
  server.addService(WebhookServiceService, createWebhookService({ db, config, logger }));
  const host = config.grpcHost.includes(":") ? `[${config.grpcHost}]` : config.grpcHost;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${config.grpcPort}`, ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(err);
        else resolve(bound);
      });
    });
  } catch (err) {
    await worker.stop();
    await closeClients();
    throw new Error(`cannot listen on ${host}:${config.grpcPort} (GRPC_HOST/GRPC_PORT): ${(err as Error).message}`, {
      cause: err,
    });
  }

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    await shutdownServer(server, config.shutdownTimeoutMs);
    await worker.stop();
    await closeClients();
  };
  return {
    address: `${host}:${port}`,
    port,
    done: worker.done,
    stop: () => (stopping ??= stop()),
  };
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
