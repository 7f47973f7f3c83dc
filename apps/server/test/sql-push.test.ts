import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { sql as drizzleSql } from "drizzle-orm";
import { drizzle as drizzleNodePostgres } from "drizzle-orm/node-postgres";
import { drizzle as drizzlePostgresJs } from "drizzle-orm/postgres-js";
import pg from "pg";
import postgres from "postgres";
import { DeliveryStatus } from "@httpqueue/sdk";
import { pushEventInTransaction, type SqlPushEventInput, type SqlTransaction } from "@httpqueue/sdk/sql";
import { ADMIN_URL, startReceiver, type Receiver } from "@httpqueue/testkit";
import { startTestServer, waitForDelivery, type TestServer } from "./helpers/server.js";

/**
 * `@httpqueue/sdk/sql` against the real function `httpqueue.push_event`: the
 * application's own transaction (postgres.js, pg, drizzle over either) on the
 * database a running server delivers from, with real receivers.
 */

/** What a test does inside a transaction, whatever the driver. */
interface Tx {
  push(input: SqlPushEventInput): Promise<{ eventId: string }>;
  /** A savepoint, rolled back when `body` throws (and the error rethrown). */
  savepoint<T>(body: (tx: Tx) => Promise<T>): Promise<T>;
  run(statement: string): Promise<void>;
}

interface Driver {
  /** Commits when `body` returns, rolls back when it throws. */
  transaction<T>(body: (tx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function txOf(
  handle: SqlTransaction,
  run: (statement: string) => PromiseLike<unknown>,
  savepoint: Tx["savepoint"],
): Tx {
  return {
    push: (input) => pushEventInTransaction(handle, input),
    savepoint,
    run: async (statement) => {
      await run(statement);
    },
  };
}

function postgresJsDriver(url: string): Driver {
  const sql = postgres(url, { max: 2, onnotice: () => undefined });
  const wrap = (tx: postgres.TransactionSql): Tx =>
    txOf(
      tx,
      (s) => tx.unsafe(s),
      (body) => tx.savepoint((sp) => body(wrap(sp))) as Promise<never>,
    );
  return {
    transaction: (body) => sql.begin((tx) => body(wrap(tx))) as Promise<never>,
    close: () => sql.end({ timeout: 5 }),
  };
}

function nodePostgresDriver(url: string): Driver {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  let savepoints = 0;
  const wrap = (client: pg.PoolClient): Tx =>
    txOf(
      client,
      (s) => client.query(s),
      async (body) => {
        const name = `sp${++savepoints}`;
        await client.query(`savepoint ${name}`);
        try {
          const result = await body(wrap(client));
          await client.query(`release savepoint ${name}`);
          return result;
        } catch (err) {
          await client.query(`rollback to savepoint ${name}`);
          throw err;
        }
      },
    );
  return {
    async transaction(body) {
      const client = await pool.connect();
      try {
        await client.query("begin");
        const result = await body(wrap(client));
        await client.query("commit");
        return result;
      } catch (err) {
        await client.query("rollback");
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/** The part of drizzle's PgTransaction the tests use, the same for both drivers. */
interface DrizzleTx {
  execute(query: ReturnType<typeof drizzleSql.raw>): PromiseLike<unknown>;
  transaction<T>(body: (tx: DrizzleTx) => Promise<T>): Promise<T>;
}

function drizzleTx(tx: DrizzleTx & SqlTransaction): Tx {
  return txOf(
    tx,
    (s) => tx.execute(drizzleSql.raw(s)),
    (body) => tx.transaction((sp) => body(drizzleTx(sp as DrizzleTx & SqlTransaction))),
  );
}

function drizzlePostgresJsDriver(url: string): Driver {
  const client = postgres(url, { max: 2, onnotice: () => undefined });
  const db = drizzlePostgresJs(client);
  return {
    transaction: (body) => db.transaction((tx) => body(drizzleTx(tx))),
    close: () => client.end({ timeout: 5 }),
  };
}

function drizzleNodePostgresDriver(url: string): Driver {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const db = drizzleNodePostgres(pool);
  return {
    transaction: (body) => db.transaction((tx) => body(drizzleTx(tx))),
    close: () => pool.end(),
  };
}

const DRIVERS: { name: string; make: (url: string) => Driver }[] = [
  { name: "postgres.js", make: postgresJsDriver },
  { name: "pg", make: nodePostgresDriver },
  { name: "drizzle (postgres.js)", make: drizzlePostgresJsDriver },
  { name: "drizzle (pg)", make: drizzleNodePostgresDriver },
];

class Rollback extends Error {
  override name = "Rollback";
}

/** The role an application would push as: USAGE on the schema and EXECUTE on the function, nothing else. */
const ROLE = `httpqueue_pusher_${randomBytes(4).toString("hex")}`;

describe("pushEventInTransaction", () => {
  let server: TestServer;
  const receivers: Receiver[] = [];

  before(async () => {
    server = await startTestServer();
    await server.db.sql.unsafe(`create role ${ROLE} nologin`);
    await server.db.sql.unsafe(`grant usage on schema httpqueue to ${ROLE}`);
    await server.db.sql.unsafe(
      `grant execute on function httpqueue.push_event(text, text, jsonb, integer, jsonb, text, text) to ${ROLE}`,
    );
  });
  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await server.stop();
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
    try {
      await admin.unsafe(`drop role if exists ${ROLE}`);
    } finally {
      await admin.end({ timeout: 5 });
    }
  });

  /** A receiver and a webhook on it for `namespace`/`event`. */
  async function hook(namespace: string, event: string): Promise<{ receiver: Receiver; webhookId: string }> {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const { webhookId } = await server.client.registerWebhook({ namespace, event, url: receiver.url });
    return { receiver, webhookId };
  }

  /**
   * What the database holds for a webhook and an event: the rows a rollback
   * must leave out. Jobs are read from graphile-worker's table, as its `jobs`
   * view has no payload, where the webhook's id is.
   */
  async function stored(webhookId: string, eventId: string) {
    const [row] = await server.db.sql<{ events: number; deliveries: number; jobs: number; allDeliveries: number }[]>`
      select
        (select count(*)::int from event_records where id = ${eventId}) as events,
        (select count(*)::int from webhook_deliveries where webhook_id = ${webhookId}) as deliveries,
        (select count(*)::int from graphile_worker._private_jobs where payload->>'webhookId' = ${webhookId}) as jobs,
        (select count(*)::int from webhook_deliveries) as "allDeliveries"`;
    return row!;
  }

  it("refuses anything but a postgres.js, pg or drizzle transaction with a TypeError", async () => {
    const input = { namespace: "n", event: "e", payload: {} };
    for (const tx of [{}, null, "select 1", { execute: () => undefined }]) {
      await assert.rejects(pushEventInTransaction(tx as never, input), (err: unknown) => {
        assert.ok(err instanceof TypeError);
        assert.match(err.message, /postgres\.js transaction .* pg Client .* drizzle transaction/);
        return true;
      });
    }
  });

  it("refuses the root postgres.js sql, a pg Pool and a drizzle database, which are not transactions", async () => {
    const namespace = "sql-refused";
    const sql = postgres(server.db.url, { max: 1, onnotice: () => undefined });
    const pool = new pg.Pool({ connectionString: server.db.url, max: 1 });
    try {
      const cases: [string, unknown, RegExp][] = [
        ["sql", sql, /^pushEventInTransaction: pass the transaction from sql\.begin\(\.\.\.\) .*, not sql itself/],
        ["pool", pool, /^pushEventInTransaction: pass a client from pool\.connect\(\) .*, not the Pool itself/],
        [
          "drizzle-postgres-js",
          drizzlePostgresJs(sql),
          /^pushEventInTransaction: pass the transaction from db\.transaction\(.*\), not the drizzle database/,
        ],
        [
          "drizzle-pg",
          drizzleNodePostgres(pool),
          /^pushEventInTransaction: pass the transaction from db\.transaction\(.*\), not the drizzle database/,
        ],
      ];
      for (const [event, handle, message] of cases) {
        await assert.rejects(
          pushEventInTransaction(handle as SqlTransaction, { namespace, event, payload: {} }),
          (err: unknown) => {
            assert.ok(err instanceof TypeError, `${event}: ${String(err)}`);
            assert.match(err.message, message);
            return true;
          },
        );
      }
      assert.equal(pool.totalCount, 0, "the Pool was not used");
      // The same input in a transaction is stored: only the refusals left nothing.
      const { eventId } = await sql.begin((tx) => pushEventInTransaction(tx, { namespace, event: "tx", payload: {} }));
      const rows = await server.db.sql<{ id: string; event: string }[]>`
        select id, event from event_records where namespace = ${namespace}`;
      assert.deepEqual(
        rows.map((r) => ({ ...r })),
        [{ id: eventId, event: "tx" }],
      );
    } finally {
      await Promise.all([sql.end({ timeout: 5 }), pool.end()]);
    }
  });

  for (const { make, name } of DRIVERS) {
    describe(`with ${name}`, () => {
      const namespace = `sql-${name.replace(/[^a-z]+/g, "-").replace(/-$/, "")}`;
      let driver: Driver;
      before(() => {
        driver = make(server.db.url);
      });
      after(() => driver.close());

      it("delivers an event pushed in a transaction that commits", async () => {
        const { receiver } = await hook(namespace, "committed");
        const { eventId } = await driver.transaction((tx) =>
          tx.push({
            namespace,
            event: "committed",
            payload: '{"order":  42, "items": [1, 2]}',
            metadata: { source: "sql" },
            ttlSeconds: 60,
          }),
        );
        const [request] = await receiver.waitForRequests(1);
        // jsonb's own text: keys by length, then bytes; one space after ':' and ','.
        assert.equal(request?.body, '{"items": [1, 2], "order": 42}');
        await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
        const { event } = await server.client.getEvent({ eventId });
        assert.deepEqual(event?.metadata, { source: "sql" });
        assert.equal(event.ttlSeconds, 60);
      });

      it("encodes a payload that is not a string as JSON", async () => {
        const { receiver } = await hook(namespace, "encoded");
        await driver.transaction((tx) =>
          tx.push({ namespace, event: "encoded", payload: { b: [true, null], a: "é" } }),
        );
        const [request] = await receiver.waitForRequests(1);
        assert.deepEqual(JSON.parse(request!.body), { b: [true, null], a: "é" });
      });

      it("leaves no event, delivery or job when the transaction rolls back", async () => {
        const { receiver, webhookId } = await hook(namespace, "rolled-back");
        let pushed = "";
        const before = await stored(webhookId, "00000000-0000-0000-0000-000000000000");
        await assert.rejects(
          driver.transaction(async (tx) => {
            pushed = (await tx.push({ namespace, event: "rolled-back", payload: { n: 1 } })).eventId;
            throw new Rollback();
          }),
          Rollback,
        );
        assert.match(pushed, /^[0-9a-f-]{36}$/);
        assert.deepEqual(await stored(webhookId, pushed), { ...before, events: 0 });
        assert.deepEqual(before, { ...before, deliveries: 0, jobs: 0 });

        // A later event on the same webhook is delivered alone.
        const { eventId } = await driver.transaction((tx) =>
          tx.push({ namespace, event: "rolled-back", payload: { n: 2 } }),
        );
        await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
        assert.deepEqual(
          receiver.requests.map((r) => r.body),
          ['{"n": 2}'],
        );
      });

      it("delivers nothing pushed in a savepoint that rolls back, and the rest of the transaction", async () => {
        const { receiver } = await hook(namespace, "partial");
        const ids = await driver.transaction(async (tx) => {
          const first = await tx.push({ namespace, event: "partial", payload: { part: "first" } });
          let undone = "";
          await assert.rejects(
            tx.savepoint(async (sp) => {
              undone = (await sp.push({ namespace, event: "partial", payload: { part: "undone" } })).eventId;
              throw new Rollback();
            }),
            Rollback,
          );
          const kept = await tx.savepoint((sp) => sp.push({ namespace, event: "partial", payload: { part: "kept" } }));
          const last = await tx.push({ namespace, event: "partial", payload: { part: "last" } });
          return { first: first.eventId, undone, kept: kept.eventId, last: last.eventId };
        });
        await Promise.all(
          [ids.first, ids.kept, ids.last].map((id) =>
            waitForDelivery(server.client, id, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED),
          ),
        );
        assert.deepEqual(receiver.requests.map((r) => (JSON.parse(r.body) as { part: string }).part).sort(), [
          "first",
          "kept",
          "last",
        ]);
        const [undone] = await server.db.sql`select 1 from event_records where id = ${ids.undone}`;
        assert.equal(undone, undefined, "the rolled-back savepoint's event is not stored");
      });

      it("returns the first event's id for a repeated idempotency key, and refuses another payload with 23505", async () => {
        await hook(namespace, "idem");
        const [first, again] = await driver.transaction(async (tx) => [
          await tx.push({ namespace, event: "idem", payload: { n: 1 }, idempotencyKey: "order-7" }),
          await tx.push({ namespace, event: "idem", payload: { n: 1 }, idempotencyKey: "order-7" }),
        ]);
        assert.equal(again.eventId, first.eventId);
        const later = await driver.transaction((tx) =>
          tx.push({ namespace, event: "idem", payload: { n: 1 }, idempotencyKey: "order-7" }),
        );
        assert.equal(later.eventId, first.eventId);
        await assert.rejects(
          driver.transaction((tx) =>
            tx.push({ namespace, event: "idem", payload: { n: 2 }, idempotencyKey: "order-7" }),
          ),
          (err: unknown) => {
            assert.ok(err instanceof postgres.PostgresError || err instanceof pg.DatabaseError, String(err));
            assert.equal(err.code, "23505");
            assert.match(err.message, /^idempotency_key: "order-7" was used in namespace /);
            return true;
          },
        );
      });

      it("passes the function's SQLSTATE 22023 errors through as the driver reports them", async () => {
        const cases: [Partial<SqlPushEventInput>, RegExp][] = [
          [{ namespace: "bad name" }, /^namespace: may contain only/],
          [{ event: "" }, /^event: is required/],
          [{ ttlSeconds: -5 }, /^ttl_seconds: /],
          [{ metadata: { n: 1 } as never }, /^metadata\["n"\]: must be a string/],
          [{ orderingKey: "has space" }, /^ordering_key: /],
        ];
        for (const [change, message] of cases) {
          await assert.rejects(
            driver.transaction((tx) => tx.push({ namespace, event: "bad", payload: {}, ...change })),
            (err: unknown) => {
              assert.ok(
                err instanceof postgres.PostgresError || err instanceof pg.DatabaseError,
                `a driver error: ${String(err)}`,
              );
              assert.equal(err.code, "22023");
              assert.match(err.message, message);
              return true;
            },
          );
        }
      });

      it("refuses a payload that is not JSON before it reaches the database", async () => {
        const { receiver } = await hook(namespace, "checked");
        const { eventId } = await driver.transaction(async (tx) => {
          await assert.rejects(tx.push({ namespace, event: "checked", payload: "{not json" }), (err: unknown) => {
            assert.ok(err instanceof SyntaxError);
            assert.match(err.message, /^payload: not JSON text/);
            return true;
          });
          await assert.rejects(tx.push({ namespace, event: "checked", payload: undefined }), /^TypeError: payload:/);
          // Nothing was sent: the transaction goes on.
          return tx.push({ namespace, event: "checked", payload: "[]" });
        });
        await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
        assert.equal(receiver.requests[0]?.body, "[]");
      });

      it("pushes as a role with only USAGE on the schema and EXECUTE on the function", async () => {
        const { receiver } = await hook(namespace, "as-role");
        const { eventId } = await driver.transaction(async (tx) => {
          await tx.run(`set local role ${ROLE}`);
          return tx.push({ namespace, event: "as-role", payload: { role: true } });
        });
        await receiver.waitForRequests(1);
        await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
        await assert.rejects(
          driver.transaction(async (tx) => {
            await tx.run(`set local role ${ROLE}`);
            await tx.run("select count(*) from event_records");
          }),
          (err: unknown) => {
            const { code, cause } = err as { code?: string; cause?: { code?: string } };
            assert.equal(code ?? cause?.code, "42501", "the tables stay out of reach");
            return true;
          },
        );
      });
    });
  }
});

describe("@httpqueue/sdk/sql as built", () => {
  it("imports nothing but its own modules (no gRPC, no driver)", async () => {
    const dir = fileURLToPath(new URL("../../../packages/sdk/dist/sql/", import.meta.url));
    const files = (await readdir(dir)).filter((f) => f.endsWith(".js"));
    assert.ok(files.includes("index.js"), `built: ${files.join(", ")}`);
    for (const file of files) {
      const text = await readFile(join(dir, file), "utf8");
      const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)].map((m) => m[1]);
      for (const specifier of specifiers) assert.match(specifier!, /^\.\/[a-z-]+\.js$/, `${file} imports ${specifier}`);
    }
  });
});
