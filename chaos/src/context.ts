import { createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import { freePort } from "@httpqueue/testkit";
import { lostEvents } from "./analysis.js";
import { DeadlineError, waitFor } from "./clock.js";
import { createDatabase, dropDatabase } from "./databases.js";
import type { PushLoad } from "./load.js";
import type { Recorder } from "./receiver.js";
import { count } from "./report.js";
import type { Resources } from "./resources.js";
import { startServer, type RunningServer } from "./servers.js";

/** What a scenario is given to run with. */
export interface ScenarioContext {
  /** Where databases are created (the shared PostgreSQL: never stopped). */
  adminUrl: string;
  seed: number;
  /** The short variant the tests run: small numbers, one fault. */
  smoke: boolean;
  /** Overrides of the scenario's size: events pushed, or hostile requests sent. */
  size: number | undefined;
  /** Every step gives up by then: the scenario ends with a clear failure rather than hang. */
  deadlineAt: number;
  resources: Resources;
  /** A progress line (stderr). */
  say(line: string): void;
}

/** What a scenario measured, and the promises it saw broken. */
export interface Outcome {
  figures: [string, string][];
  broken: string[];
}

export interface Scenario {
  name: string;
  title: string;
  /** Longest the scenario may take, full and smoke: its deadline. */
  budgetMs: { full: number; smoke: number };
  run(ctx: ScenarioContext): Promise<Outcome>;
}

/** An empty database on the shared PostgreSQL, dropped at the end. */
export async function freshDatabase(ctx: ScenarioContext): Promise<string> {
  const { name, url } = await createDatabase(ctx.adminUrl);
  ctx.resources.add(`database ${name}`, () => dropDatabase(ctx.adminUrl, name));
  return url;
}

export interface ServerSlot {
  name: string;
  databaseUrl: string;
  grpcPort: number;
  httpPort: number;
  env?: Record<string, string>;
}

/** Ports for a server that keeps them across restarts (its clients reconnect to the same address). */
export async function serverSlot(name: string, databaseUrl: string, env?: Record<string, string>): Promise<ServerSlot> {
  return { name, databaseUrl, grpcPort: await freePort(), httpPort: await freePort(), ...(env ? { env } : {}) };
}

/** Starts (or restarts) the server of `slot`; it is stopped at the end if still running. */
export async function launch(ctx: ScenarioContext, slot: ServerSlot): Promise<RunningServer> {
  const server = await startServer(slot);
  ctx.resources.add(`server ${slot.name} (pid ${server.pid})`, () => server.stop(10_000));
  return server;
}

/** An SDK client that reconnects quickly to a server that comes back on the same address. */
export function connect(ctx: ScenarioContext, address: string): HttpQueueClient {
  const client = createClient({
    address,
    channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1_000 },
  });
  ctx.resources.add(`client of ${address}`, () => {
    client.close();
  });
  return client;
}

/** A webhook's deliveries by status name (SUCCEEDED, RETRYING…), from GetWebhookStatus. */
export async function deliveryCounts(client: HttpQueueClient, webhookId: string): Promise<Map<string, number>> {
  const { counts } = await client.getWebhookStatus({ webhookId, pageSize: 1 }, { deadlineMs: 10_000 });
  return new Map(counts.map((c) => [DeliveryStatus[c.status].replace("DELIVERY_STATUS_", ""), c.count]));
}

/** Deliveries not SUCCEEDED, over the webhooks: 0 once every delivery has succeeded. */
export async function notSucceeded(client: HttpQueueClient, webhookIds: readonly string[]): Promise<number> {
  let open = 0;
  for (const id of webhookIds) {
    for (const [name, n] of await deliveryCounts(client, id)) if (name !== "SUCCEEDED") open += n;
  }
  return open;
}

export interface Settled {
  /** The acknowledged events' sequence numbers, once the load had finished. */
  acknowledged: number[];
  /** The waits that ran past the deadline: broken promises. */
  broken: string[];
}

/**
 * Once the load has finished: waits until the receiver has answered 2xx to
 * every acknowledged event and every delivery of `webhookIds` is SUCCEEDED
 * (asked through `client`). A wait past the scenario's deadline is returned
 * as broken, so the scenario still measures and reports what happened.
 */
export async function settleDeliveries(
  ctx: ScenarioContext,
  options: { load: PushLoad; recorder: Recorder; client: HttpQueueClient; webhookIds: readonly string[] },
): Promise<Settled> {
  const { load, recorder, client, webhookIds } = options;
  await load.finished;
  const acknowledged = [...load.acknowledged.keys()];
  ctx.say(`${count(acknowledged.length)} acknowledged; waiting for their deliveries`);
  const broken: string[] = [];
  try {
    await waitFor("every acknowledged event delivered", ctx.deadlineAt - 20_000, () =>
      lostEvents(acknowledged, recorder.receipts).length === 0 ? true : undefined,
    );
    await waitFor("every delivery SUCCEEDED (GetWebhookStatus)", ctx.deadlineAt - 10_000, async () =>
      (await notSucceeded(client, webhookIds)) === 0 ? true : undefined,
    );
  } catch (err) {
    if (!(err instanceof DeadlineError)) throw err;
    broken.push(err.message);
  }
  return { acknowledged, broken };
}
