import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, DeliveryStatus, type Delivery, type HttpQueueClient } from "@httpqueue/sdk";
import { after, before } from "node:test";
import {
  createTestDatabase,
  eventually,
  startReceiver,
  type Receiver,
  type Responder,
  runToExit,
  spawnServer as spawn,
  type ServerProcess,
  type TestDatabase,
} from "@httpqueue/testkit";
import { startApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../../src/db/migrate.js";
import { createLogger } from "../../src/observability/logger.js";

/** The built server, started the way users start it. */
export const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/**
 * Settings that keep tests fast (short retries, quick polling, quiet logs) and
 * let deliveries reach the receivers the tests run on loopback, which the
 * destination guard refuses by default (the SSRF tests turn it back on).
 */
export const FAST_ENV = {
  ALLOW_PRIVATE_DESTINATIONS: "true",
  GRPC_PORT: "0",
  HTTP_PORT: "0",
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
  RETRY_SCHEDULE: "100ms",
  RETRY_JITTER: "0",
  WORKER_POLL_INTERVAL: "50ms",
  SHUTDOWN_TIMEOUT: "5s",
} as const;

/** Changes whenever a migration (ours or graphile-worker's) does. */
function schemaKey(): string {
  const hash = createHash("sha256");
  for (const file of readdirSync(MIGRATIONS_FOLDER, { recursive: true }).map(String).sort()) {
    if (file.endsWith(".sql") || file.endsWith(".json")) {
      hash.update(file).update(readFileSync(join(MIGRATIONS_FOLDER, file)));
    }
  }
  const graphile = fileURLToPath(import.meta.resolve("graphile-worker/package.json"));
  return hash.update(readFileSync(graphile)).digest("hex");
}

/** A fresh database with the schema in place, cloned from a migrated template. */
export function createMigratedDatabase(): Promise<TestDatabase> {
  return createTestDatabase({
    key: schemaKey(),
    migrate: (url) => migrateDatabase(url, createLogger("silent")),
  });
}

export interface TestServer {
  app: App;
  client: HttpQueueClient;
  db: TestDatabase;
  /** Stops the server and drops its database (unless the caller brought it). */
  stop(): Promise<void>;
}

/** A real server (gRPC on a free port, worker, migrations) in this process, on a database of its own. */
export async function startTestServer(
  env: Record<string, string> = {},
  db?: TestDatabase,
  logTo?: { write(line: string): void },
): Promise<TestServer> {
  const database = db ?? (await createMigratedDatabase());
  const config = loadConfig({ ...FAST_ENV, DATABASE_URL: database.url, ...env });
  const app = await startApp(
    { ...config, databaseUrl: config.databaseUrl ?? database.url },
    createLogger(config.logLevel, logTo),
  );
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

/** `node dist/main.js` with the fast settings, logging at info. */
export function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  return spawn(MAIN, { ...FAST_ENV, LOG_LEVEL: "info", ...env });
}

/** `node dist/main.js` expected to stop by itself (bad settings, no database). */
export function runServerToExit(env: Record<string, string>) {
  return runToExit(MAIN, env);
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

/**
 * For a describe block: a migrated database of its own (`fixture.db`, ready in
 * the tests) and receivers started with `fixture.receiver()`, all cleaned up
 * after the block.
 */
export function databaseAndReceivers(): {
  readonly db: TestDatabase;
  receiver(respond?: Responder): Promise<Receiver>;
} {
  let db: TestDatabase | undefined;
  const receivers: Receiver[] = [];
  before(async () => {
    db = await createMigratedDatabase();
  });
  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await db?.drop();
  });
  return {
    get db() {
      if (!db) throw new Error("the database exists once the before hook has run");
      return db;
    },
    async receiver(respond) {
      const receiver = await startReceiver(respond);
      receivers.push(receiver);
      return receiver;
    },
  };
}
