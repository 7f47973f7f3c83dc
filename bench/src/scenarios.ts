// What every httpqueue scenario shares: each starts the server on a fresh
// database (a copy of a migrated template), loads it, measures, stops it and
// drops the database. The scenarios are in ingest.ts and delivery.ts.
import type { HttpQueueClient } from "@httpqueue/sdk";
import type { DatabaseAdmin, BenchDatabase } from "./database.js";
import { createClients } from "./load.js";
import type { BenchReceiver } from "./receiver.js";
import { startService, type Service } from "./service.js";

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
  /** More settings for the server. */
  serverEnv: Record<string, string>;
}

export interface Running {
  service: Service;
  db: BenchDatabase;
  clients: HttpQueueClient[];
}

export const NAMESPACE = "bench";

export async function withService<T>(
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
      env: ctx.serverEnv,
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
export async function registerWebhooks(client: HttpQueueClient, receiver: BenchReceiver, event: string, count: number) {
  for (let i = 0; i < count; i++) {
    await client.registerWebhook({ namespace: NAMESPACE, event, url: `${receiver.url}/hooks/${event}/${i}` });
  }
}
