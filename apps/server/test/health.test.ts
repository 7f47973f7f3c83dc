import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ServerResponse } from "node:http";
import { credentials, Metadata, status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { grpcHealthV1 } from "@httpqueue/proto";
import { createTestDatabase, eventually, startTcpProxy, type TcpProxy, until } from "@httpqueue/testkit";
import postgres from "postgres";
import { startApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createHealthMonitor } from "../src/observability/health.js";
import { createLogger } from "../src/observability/logger.js";
import { freePort, httpGet, readyz, scrape } from "./helpers/http.js";
import { databaseAndReceivers, FAST_ENV, startTestServer, type TestServer } from "./helpers/server.js";

const { HealthCheckResponse_ServingStatus: Serving } = grpcHealthV1;
type ServingStatus = grpcHealthV1.HealthCheckResponse_ServingStatus;

/** A grpc.health.v1 client with promises. */
function healthClient(address: string) {
  const client = new grpcHealthV1.HealthClient(address, credentials.createInsecure());
  return {
    check: (service: string) =>
      new Promise<ServingStatus>((resolve, reject) => {
        client.check({ service }, new Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => {
          if (err) reject(err);
          else resolve(res.status);
        });
      }),
    /** Statuses received on a Watch of `service`, in order; `ended` resolves when the server ends it. */
    watch(service: string) {
      const seen: ServingStatus[] = [];
      const call = client.watch({ service });
      call.on("data", (res: grpcHealthV1.HealthCheckResponse) => {
        seen.push(res.status);
      });
      const ended = new Promise<number>((resolve) => {
        call.on("status", (s: { code: number }) => {
          resolve(s.code);
        });
        call.on("error", () => undefined);
      });
      return {
        seen,
        ended,
        cancel: () => {
          call.cancel();
        },
      };
    },
    close: () => {
      client.close();
    },
  };
}

const HEALTH_ENV = { HEALTH_CHECK_INTERVAL: "50ms", LOG_LEVEL: "info" };
let dbPassword = "hunter2-never-shown";

describe("health", () => {
  const fixture = databaseAndReceivers();

  describe("while the database comes and goes", () => {
    let proxy: TcpProxy;
    let server: TestServer;
    let health: ReturnType<typeof healthClient>;
    // What the before hook set up, undone in reverse even if it failed half way.
    const cleanup: (() => unknown)[] = [];
    const lines: string[] = [];

    before(async () => {
      const target = new URL(fixture.db.url);
      proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
      cleanup.push(() => proxy.close());
      const viaProxy = new URL(fixture.db.url);
      viaProxy.port = String(proxy.port);
      // A password to keep out of answers and logs: the real one if the test
      // database has one, else one that trust authentication ignores.
      if (viaProxy.password) dbPassword = decodeURIComponent(viaProxy.password);
      else viaProxy.password = dbPassword;
      server = await startTestServer({ ...HEALTH_ENV, DATABASE_URL: viaProxy.toString() }, fixture.db, {
        write: (line) => lines.push(line),
      });
      cleanup.push(() => server.stop());
      health = healthClient(server.app.address);
      cleanup.push(() => {
        health.close();
      });
    });
    after(async () => {
      for (const undo of cleanup.reverse()) await undo();
    });

    it("is SERVING overall and for the API, and says NOT_FOUND for other services", async () => {
      assert.equal(await health.check(""), Serving.SERVING);
      assert.equal(await health.check("httpqueue.v1.WebhookService"), Serving.SERVING);
      await assert.rejects(health.check("no.such.Service"), (err: ServiceError) => {
        assert.equal(err.code, grpcStatus.NOT_FOUND);
        return true;
      });
    });

    it("answers /healthz and /readyz with 200 when everything works", async () => {
      const live = await httpGet(server.app.httpAddress, "/healthz");
      assert.equal(live.status, 200);
      assert.deepEqual(JSON.parse(live.body), { status: "ok" });
      const ready = await readyz(server.app.httpAddress);
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.body, {
        status: "ready",
        checks: { database: { ok: true }, migrations: { ok: true }, worker: { ok: true }, queue: { ok: true } },
      });
      assert.equal((await httpGet(server.app.httpAddress, "/nothing-here")).status, 404);
    });

    it("flips to NOT_SERVING when the database goes away and back to SERVING when it returns", async () => {
      const watch = health.watch("");
      await until(() => watch.seen.includes(Serving.SERVING));

      await proxy.cut();
      // The database check runs every HEALTH_CHECK_INTERVAL; another check (the
      // worker's) may see the loss first, so wait for the database's own verdict.
      const down = await eventually(async () => {
        const r = await readyz(server.app.httpAddress);
        return r.status === 503 && !r.body.checks.database.ok ? r : undefined;
      });
      assert.equal(down.body.status, "not ready");
      assert.match(down.body.checks.database.reason ?? "", /^unreachable/);
      assert.equal(await health.check(""), Serving.NOT_SERVING);
      assert.equal(await health.check("httpqueue.v1.WebhookService"), Serving.NOT_SERVING);
      assert.equal((await httpGet(server.app.httpAddress, "/healthz")).status, 200, "still alive");
      const metrics = await scrape(server.app.httpAddress);
      assert.equal(metrics.value("httpqueue_ready"), 0);
      assert.equal(metrics.value("httpqueue_health_check", { check: "database" }), 0);

      await proxy.restore();
      await eventually(async () => ((await health.check("")) === Serving.SERVING ? true : undefined));
      assert.equal(await health.check("httpqueue.v1.WebhookService"), Serving.SERVING);
      assert.equal((await readyz(server.app.httpAddress)).status, 200);
      assert.equal((await scrape(server.app.httpAddress)).value("httpqueue_ready"), 1);

      await until(() => watch.seen.at(-1) === Serving.SERVING);
      assert.deepEqual(
        watch.seen.filter((s, i) => s !== watch.seen[i - 1]),
        [Serving.SERVING, Serving.NOT_SERVING, Serving.SERVING],
        "the Watch saw each change",
      );
      watch.cancel();

      const log = lines.join("");
      assert.match(log, /"msg":"health check failing: database"/);
      assert.match(log, /"msg":"health check passing again: database"/);
      assert.ok(!log.includes(dbPassword), "the database password is not logged");
      assert.ok(!JSON.stringify(down.body).includes(dbPassword));
    });
  });

  it("fails the worker check while the worker is down, with its reason", async () => {
    const sql = postgres(fixture.db.url, { max: 1, onnotice: () => undefined });
    const monitor = createHealthMonitor({
      pingDatabase: async () => {
        await sql`select 1`;
      },
      oldestDueJobSeconds: () => Promise.resolve(0),
      queueStallAfterMs: 60_000,
      intervalMs: 60_000,
      logger: createLogger("silent"),
    });
    try {
      monitor.migrationsApplied();
      monitor.setWorker({ ok: true });
      await monitor.start();
      assert.equal(monitor.readiness().ready, true);

      const changes: boolean[] = [];
      monitor.onChange((r) => changes.push(r.ready));
      monitor.setWorker({ ok: false, reason: "the delivery worker stopped; restarting it" });
      assert.deepEqual(changes, [false]);
      const after = monitor.readiness();
      assert.equal(after.ready, false);
      assert.deepEqual(after.checks.worker, { ok: false, reason: "the delivery worker stopped; restarting it" });
      assert.deepEqual(after.checks.database, { ok: true });
      monitor.setWorker({ ok: true });
      assert.deepEqual(changes, [false, true]);
    } finally {
      monitor.stop();
      await sql.end();
    }
  });

  it("answers liveness while the migrations wait, and readiness once they are applied", async () => {
    const empty = await createTestDatabase();
    const locker = postgres(empty.url, { max: 1, onnotice: () => undefined });
    try {
      // The lock every server takes to migrate: another server is migrating.
      await locker`select pg_advisory_lock(${0x6874_7071})`;
      const httpPort = await freePort();
      const config = loadConfig({ ...FAST_ENV, DATABASE_URL: empty.url, HTTP_PORT: String(httpPort) });
      const starting = startApp({ ...config, databaseUrl: empty.url }, createLogger("silent"));
      const address = `127.0.0.1:${httpPort}`;

      const waiting = await eventually(() => readyz(address));
      assert.equal(waiting.status, 503);
      assert.deepEqual(waiting.body.checks.migrations, { ok: false, reason: "not applied yet" });
      assert.equal((await httpGet(address, "/healthz")).status, 200);

      await locker`select pg_advisory_unlock(${0x6874_7071})`;
      const app = await starting;
      try {
        assert.equal(app.httpAddress, address);
        assert.equal((await readyz(address)).status, 200);
      } finally {
        await app.stop();
      }
    } finally {
      await locker.end();
      await empty.drop();
    }
  });

  it("while stopping: readiness fails, Watch calls hear NOT_SERVING and end, running deliveries finish", async () => {
    let held: ServerResponse | undefined;
    const receiver = await fixture.receiver((_req, _i, res) => {
      held = res;
      return "hang";
    });
    const server = await startTestServer({ ...HEALTH_ENV, LOG_LEVEL: "silent" }, fixture.db);
    const health = healthClient(server.app.address);
    try {
      await server.client.registerWebhook({ namespace: "health", event: "stop", url: receiver.url });
      await server.client.pushEvent({ namespace: "health", event: "stop", payload: "{}" });
      await receiver.waitForRequests(1);
      const watch = health.watch("httpqueue.v1.WebhookService");
      await until(() => watch.seen.includes(Serving.SERVING));

      const stopping = server.stop();
      const during = await eventually(async () => {
        const r = await readyz(server.app.httpAddress);
        return r.body.status === "stopping" ? r : undefined;
      });
      assert.equal(during.status, 503);
      assert.equal(await watch.ended, grpcStatus.OK, "the Watch ends instead of holding the shutdown");
      assert.equal(watch.seen.at(-1), Serving.NOT_SERVING);

      held?.writeHead(200).end("ok");
      await stopping;
      const [row] = await fixture.db.sql<{ status: string }[]>`
        select d.status from webhook_deliveries d join webhook_registrations w on w.id = d.webhook_id
        where w.namespace = 'health' and w.event = 'stop'`;
      assert.equal(row?.status, "succeeded");
    } finally {
      health.close();
      await server.stop();
    }
  });
});
