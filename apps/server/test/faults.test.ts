import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient, type HttpQueueClient } from "@httpqueue/sdk";
import {
  eventually,
  freePort,
  until,
  startReceiver,
  startTcpProxy,
  terminate,
  type Receiver,
  type ServerProcess,
  type TcpProxy,
  type TestDatabase,
} from "@httpqueue/testkit";
import postgres from "postgres";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../src/db/embedded.js";
import { createLogger } from "../src/observability/logger.js";
import { readyz } from "./helpers/http.js";
import { createMigratedDatabase, spawnServer } from "./helpers/server.js";

// The database goes away under load and comes back: the server must ride
// through (no restart), say so on /readyz while it lasts, and deliver every
// event it acknowledged once the database is back.

const FAULT_ENV = { HEALTH_CHECK_INTERVAL: "200ms", RETRY_SCHEDULE: "200ms", MAX_ATTEMPTS: "50" };

/**
 * Callers pushing events with idempotency keys, each retrying a push until it
 * is acknowledged, as a careful client does. `acknowledged` holds the sequence
 * numbers the server answered OK.
 */
function startPushing(client: HttpQueueClient, callers: number) {
  const acknowledged = new Set<number>();
  let next = 0;
  let running = true;
  // A function, so that TypeScript does not take it for true after each await.
  const stillRunning = () => running;
  let failures = 0;
  const caller = async () => {
    while (stillRunning()) {
      const seq = next++;
      for (;;) {
        try {
          await client.pushEvent(
            { namespace: "faults", event: "e", payload: JSON.stringify({ seq }), idempotencyKey: `seq-${seq}` },
            { deadlineMs: 5_000 },
          );
          acknowledged.add(seq);
          break;
        } catch {
          failures++;
          // Given up once the test stops pushing: never acknowledged, so never owed.
          if (!stillRunning()) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
  };
  const all = Promise.all(Array.from({ length: callers }, caller));
  return {
    acknowledged,
    failures: () => failures,
    async stop() {
      running = false;
      await all;
    },
  };
}

/** The sequence numbers the receiver got (each at least once). */
function delivered(receiver: Receiver): Set<number> {
  return new Set(receiver.requests.map((r) => (JSON.parse(r.body) as { seq: number }).seq));
}

async function everyAcknowledgedDelivered(
  receiver: Receiver,
  acknowledged: Set<number>,
  explain: () => Promise<string>,
  timeoutMs = 30_000,
) {
  try {
    await until(
      () => {
        const got = delivered(receiver);
        return [...acknowledged].every((seq) => got.has(seq));
      },
      timeoutMs,
      "every acknowledged event delivered",
    );
  } catch (err) {
    const got = delivered(receiver);
    const missing = [...acknowledged].filter((seq) => !got.has(seq));
    throw new Error(
      `${missing.length} of ${acknowledged.size} not delivered (${missing.slice(0, 10).join(", ")}…)\n${await explain()}`,
      { cause: err },
    );
  }
}

/** What the database holds of undelivered events, and the server's log: for a failure's message. */
async function explainer(url: string, server: ServerProcess): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    const deliveries = await sql`select status, count(*)::int as n from webhook_deliveries group by status`;
    const jobs =
      await sql`select task_identifier, locked_by, attempts, max_attempts, run_at > now() as later, count(*)::int as n
      from graphile_worker.jobs group by 1, 2, 3, 4, 5`;
    const log = server
      .output()
      .split("\n")
      .filter((line) => !line.includes('"msg":"rpc"') && !line.includes('"msg":"delivery attempt"'))
      .join("\n");
    return `deliveries: ${JSON.stringify(deliveries)}\njobs: ${JSON.stringify(jobs)}\n${log.slice(-8000)}`;
  } finally {
    await sql.end();
  }
}

/** Waits until more than `count` pushes were acknowledged; the failure says how far they got, with the server's log. */
async function pushed(
  pushing: { acknowledged: Set<number>; failures(): number },
  count: number,
  server: ServerProcess,
) {
  try {
    await until(() => pushing.acknowledged.size > count, 30_000, `${count} pushes acknowledged`);
  } catch (err) {
    throw new Error(
      `${pushing.acknowledged.size} pushes acknowledged, ${pushing.failures()} failed\n${server.output().slice(-6000)}`,
      { cause: err },
    );
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for /readyz to say the database is down (503, database check failing). */
async function readinessSaysDatabaseDown(httpAddress: string) {
  const down = await eventually(async () => {
    const r = await readyz(httpAddress);
    return r.status === 503 && !r.body.checks.database.ok ? r : undefined;
  }, 10_000);
  assert.equal(down.body.status, "not ready");
}

async function readinessRecovers(httpAddress: string, server: ServerProcess) {
  try {
    await eventually(
      async () => ((await readyz(httpAddress)).status === 200 ? true : undefined),
      20_000,
      "ready again",
    );
  } catch (err) {
    const last = await readyz(httpAddress).catch(() => undefined);
    throw new Error(`not ready again: ${JSON.stringify(last?.body)}\n${server.output().slice(-6000)}`, { cause: err });
  }
}

describe("database restarts under load", { timeout: 180_000 }, () => {
  let dir: string;
  let port: number;
  let pg: EmbeddedPostgres;
  let receiver: Receiver;
  const logger = createLogger("silent");

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "httpqueue-faults-"));
    chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres" and must get through
    port = await freePort();
    pg = await startEmbeddedPostgres({ dir: join(dir, "pg"), port, logger });
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps running through two restarts of PostgreSQL and delivers every acknowledged event", async () => {
    const httpPort = await freePort();
    const server = await spawnServer({ ...FAULT_ENV, DATABASE_URL: pg.url, HTTP_PORT: String(httpPort) });
    const httpAddress = `127.0.0.1:${httpPort}`;
    const client = createClient({ address: server.address });
    try {
      await client.registerWebhook({ namespace: "faults", event: "e", url: receiver.url });
      const pushing = startPushing(client, 16);
      for (let round = 0; round < 2; round++) {
        await pushed(pushing, (round + 1) * 200, server);
        await pg.stop();
        await readinessSaysDatabaseDown(httpAddress);
        await sleep(2_500);
        pg = await startEmbeddedPostgres({ dir: join(dir, "pg"), port, logger });
        await readinessRecovers(httpAddress, server);
      }
      // Pushes go on after the database is back, and are delivered too.
      const settled = pushing.acknowledged.size;
      await pushed(pushing, settled + 200, server);
      await pushing.stop();
      assert.ok(pushing.failures() > 0, "pushes failed while the database was down");
      await everyAcknowledgedDelivered(receiver, pushing.acknowledged, () => explainer(pg.url, server));
      await assertStillRunning(server);
    } finally {
      client.close();
      await terminate(server);
    }
  });
});

describe("the database cut off through a proxy, briefly and for 30 s", { timeout: 240_000 }, () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let receiver: Receiver;

  before(async () => {
    db = await createMigratedDatabase();
    const url = new URL(db.url);
    proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    await proxy.close();
    await db.drop();
  });

  it("rides through both cuts and delivers every acknowledged event", async () => {
    const url = new URL(db.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const httpPort = await freePort();
    const server = await spawnServer({ ...FAULT_ENV, DATABASE_URL: url.toString(), HTTP_PORT: String(httpPort) });
    const httpAddress = `127.0.0.1:${httpPort}`;
    const client = createClient({ address: server.address });
    try {
      await client.registerWebhook({ namespace: "faults", event: "e", url: receiver.url });
      const pushing = startPushing(client, 8);
      for (const cutMs of [3_000, 30_000]) {
        await pushed(pushing, pushing.acknowledged.size + 200, server);
        await proxy.cut();
        await readinessSaysDatabaseDown(httpAddress);
        await sleep(cutMs);
        await proxy.restore();
        await readinessRecovers(httpAddress, server);
      }
      const settled = pushing.acknowledged.size;
      await pushed(pushing, settled + 200, server);
      await pushing.stop();
      await everyAcknowledgedDelivered(receiver, pushing.acknowledged, () => explainer(db.url, server));
      // Nothing is left behind in the database either (events stored whose answer was lost included).
      await eventually(async () => {
        const [row] = await db.sql<{ open: number }[]>`
          select count(*)::int as open from webhook_deliveries where status <> 'succeeded'`;
        return row?.open === 0 ? true : undefined;
      }, 20_000);
      await assertStillRunning(server);
    } finally {
      client.close();
      await terminate(server);
    }
  });
});

async function assertStillRunning(server: ServerProcess) {
  const exited = await Promise.race([server.exited, sleep(100).then(() => undefined)]);
  assert.equal(exited, undefined, `the server exited:\n${server.output().slice(-3000)}`);
}
