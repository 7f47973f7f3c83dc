import assert from "node:assert/strict";
import { createServer, type AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { Code, createClient, DeliveryStatus, HttpQueueError } from "@httpqueue/sdk";
import postgres from "postgres";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MIGRATIONS_FOLDER, migrateDatabase } from "../src/db/migrate.js";
import { createLogger } from "../src/observability/logger.js";
import { ADMIN_URL, databaseUrl, eventually, startTcpProxy, terminate } from "@httpqueue/testkit";
import {
  databaseAndReceivers,
  FAST_ENV,
  runServerToExit,
  spawnServer,
  startTestServer,
  waitForDelivery,
} from "./helpers/server.js";
import { httpGet, readyz, scrape } from "./helpers/http.js";

describe("lifecycle", () => {
  const fixture = databaseAndReceivers();

  it("SIGTERM stops taking calls, lets the running delivery finish and exits 0", async () => {
    const receiver = await fixture.receiver(() => ({ status: 200, delayMs: 1500 }));
    const proc = await spawnServer({ DATABASE_URL: fixture.db.url });
    const client = createClient({ address: proc.address });
    await client.registerWebhook({ namespace: "term", event: "slow", url: receiver.url });
    const { eventId } = await client.pushEvent({ namespace: "term", event: "slow", payload: "{}" });
    await receiver.waitForRequests(1);

    assert.equal(await terminate(proc), 0);
    assert.match(proc.output(), /shutting down/);
    client.close();

    const [row] = await fixture.db.sql<{ status: string; attempt_count: number }[]>`
      select status, attempt_count from webhook_deliveries where event_id = ${eventId}`;
    assert.deepEqual({ ...row }, { status: "succeeded", attempt_count: 1 });
  });

  it("a bad setting stops the server at start with a message naming the variable", async () => {
    const base = { DATABASE_URL: fixture.db.url };
    const cases: [Record<string, string>, RegExp][] = [
      [{ DATABASE_URL: "mysql://x" }, /DATABASE_URL must be a postgres:\/\//],
      [{ ...base, GRPC_PORT: "http" }, /GRPC_PORT must be a whole number/],
      [{ ...base, GRPC_PORT: "70000" }, /GRPC_PORT/],
      [{ ...base, HTTP_PORT: "metrics" }, /HTTP_PORT must be a whole number/],
      [{ ...base, GRPC_PORT: "9090", HTTP_PORT: "9090" }, /HTTP_PORT \(9090\) must differ from GRPC_PORT/],
      [{ ...base, HEALTH_CHECK_INTERVAL: "1ms" }, /HEALTH_CHECK_INTERVAL must be at least 10ms/],
      [{ ...base, RETRY_SCHEDULE: "5s,soon" }, /RETRY_SCHEDULE must be a comma-separated list of durations/],
      [{ ...base, LOG_LEVEL: "loud" }, /LOG_LEVEL must be one of/],
      [{ ...base, MAX_ATTEMPTS: "0" }, /MAX_ATTEMPTS/],
      [{ ...base, RETRY_JITTER: "2" }, /RETRY_JITTER/],
      [{ ...base, SHUTDOWN_TIMEOUT: "forever" }, /SHUTDOWN_TIMEOUT must be a duration/],
      [
        { ...base, DEFAULT_TTL_SECONDS: "100", MAX_TTL_SECONDS: "10" },
        /DEFAULT_TTL_SECONDS \(100\) must not exceed MAX_TTL_SECONDS/,
      ],
    ];
    for (const [env, message] of cases) {
      const { code, output } = await runServerToExit(env);
      assert.equal(code, 2, `${JSON.stringify(env)}: ${output}`);
      assert.match(output, message);
      assert.doesNotMatch(output, /at .*\.js:\d+/, "no stack trace for a configuration error");
    }
  });

  it("a port in use is reported with the setting that chose it", async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    const { port } = squatter.address() as AddressInfo;
    try {
      const { code, output } = await runServerToExit({
        ...FAST_ENV,
        LOG_LEVEL: "info",
        DATABASE_URL: fixture.db.url,
        GRPC_PORT: String(port),
      });
      assert.equal(code, 1);
      assert.match(output, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(GRPC_HOST/GRPC_PORT\\)`));
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it("a database that cannot be reached at start is reported, with exit code 1", async () => {
    const { code, output } = await runServerToExit({
      DATABASE_URL: "postgres://nobody:secret-password@127.0.0.1:1/none",
      GRPC_PORT: "0",
    });
    assert.equal(code, 1);
    assert.match(output, /could not start/);
    assert.match(output, /ECONNREFUSED/);
    assert.doesNotMatch(output, /secret-password/, "the database password is never logged");
  });

  it("the built server says where its health and metrics endpoints are, and serves them", async () => {
    const proc = await spawnServer({ DATABASE_URL: fixture.db.url });
    try {
      const httpAddress = /"httpAddress":"([^"]+)"/.exec(proc.output())?.[1];
      assert.ok(httpAddress, proc.output());
      assert.equal((await httpGet(httpAddress, "/healthz")).status, 200);
      assert.equal((await readyz(httpAddress)).status, 200);
      assert.equal((await scrape(httpAddress)).value("httpqueue_ready"), 1);
    } finally {
      assert.equal(await terminate(proc), 0);
    }
  });

  it("an HTTP port already in use stops the server at start, naming the port", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const { code, output } = await runServerToExit({
        DATABASE_URL: fixture.db.url,
        GRPC_PORT: "0",
        HTTP_PORT: String(port),
      });
      assert.equal(code, 1);
      assert.match(output, /could not start/);
      assert.match(output, new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${port}`));
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it("two servers migrating a new database at the same moment both succeed", async () => {
    const name = `httpqueue_test_migrate_${process.pid}`;
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.unsafe(`create database "${name}"`);
    try {
      const logger = createLogger("silent");
      await Promise.all([1, 2, 3].map(() => migrateDatabase(databaseUrl(name), logger)));
      const check = postgres(databaseUrl(name), { max: 1, onnotice: () => undefined });
      const tables = await check<{ table_name: string }[]>`
        select table_name from information_schema.tables where table_schema = 'public' order by 1`;
      const [journal] = await check<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
      await check.end();
      assert.deepEqual(
        tables.map((t) => t.table_name),
        [
          "delivery_attempts",
          "delivery_watchers",
          "event_records",
          "push_settings",
          "webhook_deliveries",
          "webhook_registrations",
          "webhook_runners",
        ],
      );
      const { entries } = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta/_journal.json"), "utf8")) as {
        entries: unknown[];
      };
      assert.equal(journal?.n, entries.length, "each migration applied once");
    } finally {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  });

  it("answers UNAVAILABLE while the database is unreachable, and recovers when it returns", async () => {
    const target = new URL(fixture.db.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(fixture.db.url);
    viaProxy.port = String(proxy.port);
    const receiver = await fixture.receiver();
    const server = await startTestServer({ DATABASE_URL: viaProxy.toString(), DATABASE_POOL_SIZE: "2" }, fixture.db);
    try {
      await server.client.registerWebhook({ namespace: "outage", event: "e", url: receiver.url });
      await proxy.cut();
      await assert.rejects(
        server.client.pushEvent({ namespace: "outage", event: "e", payload: "{}" }),
        (err: unknown) => {
          assert.ok(err instanceof HttpQueueError);
          assert.equal(err.code, Code.UNAVAILABLE);
          assert.match(err.details, /database is unavailable/);
          assert.doesNotMatch(err.details, /ECONNREFUSED|at /, "no internals on the wire");
          return true;
        },
      );
      await proxy.restore();
      const { eventId } = await eventually(() =>
        server.client.pushEvent({ namespace: "outage", event: "e", payload: '{"after":"outage"}' }),
      );
      await receiver.waitForRequests(1, 20_000);
      await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, 20_000);
    } finally {
      await server.stop();
      await proxy.close();
    }
  });
});
