import { createClient, DeliveryStatus, type Delivery, type HttpQueueClient } from "@httpqueue/sdk";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/observability/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

export interface TestServer {
  app: App;
  client: HttpQueueClient;
  db: TestDatabase;
  /** Stops the server and drops its database. */
  stop(): Promise<void>;
}

/** Settings that keep tests fast: short retries, quick polling, quiet logs. */
export const FAST_ENV = {
  GRPC_PORT: "0",
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
  RETRY_SCHEDULE: "100ms",
  RETRY_JITTER: "0",
  WORKER_POLL_INTERVAL: "50ms",
  SHUTDOWN_TIMEOUT: "5s",
} as const;

/** A real server (gRPC on a free port, worker, migrations) on a database of its own. */
export async function startTestServer(
  env: Record<string, string> = {},
  db?: TestDatabase,
  logTo?: { write(line: string): void },
): Promise<TestServer> {
  const database = db ?? (await createTestDatabase());
  const config = loadConfig({ ...FAST_ENV, DATABASE_URL: database.url, ...env });
  const app = await startApp(config, createLogger(config.logLevel, logTo));
  const client = createClient({ address: app.address });
  return {
    app,
    client,
    db: database,
    async stop() {
      client.close();
      await app.stop();
      if (!db) await database.drop();
    },
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`, { cause: last });
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const FINAL = new Set([
  DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  DeliveryStatus.DELIVERY_STATUS_FAILED,
  DeliveryStatus.DELIVERY_STATUS_EXPIRED,
  DeliveryStatus.DELIVERY_STATUS_CANCELLED,
]);

/**
 * Waits until the event's first delivery is in `status` ("final": any of
 * SUCCEEDED, FAILED, EXPIRED, CANCELLED) and returns it.
 */
export function waitForDelivery(
  client: HttpQueueClient,
  eventId: string,
  status: DeliveryStatus | "final",
  timeoutMs = 15_000,
): Promise<Delivery> {
  return eventually(
    async () => {
      const { deliveries } = await client.getWebhookStatus({ identifier: { $case: "eventId", value: eventId } });
      const [delivery] = deliveries;
      if (!delivery) return undefined;
      return (status === "final" ? FINAL.has(delivery.status) : delivery.status === status) ? delivery : undefined;
    },
    timeoutMs,
    `a delivery of event ${eventId} in status ${status === "final" ? "final" : DeliveryStatus[status]}`,
  );
}
