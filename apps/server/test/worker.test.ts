import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { until } from "@httpqueue/testkit";
import type { WorkerPool } from "graphile-worker";
import { startWorker, type WorkerStatus } from "../src/delivery/worker.js";
import { createLogger } from "../src/observability/logger.js";
import { databaseAndReceivers } from "./helpers/server.js";

describe("worker supervision", () => {
  const fixture = databaseAndReceivers();

  it("replaces a pool that shuts itself down, and the new pool runs jobs", async () => {
    const ran: string[] = [];
    const pools: WorkerPool[] = [];
    const statuses: WorkerStatus[] = [];
    const worker = await startWorker({
      databaseUrl: fixture.db.url,
      concurrency: 4,
      pollIntervalMs: 50,
      shutdownTimeoutMs: 1_000,
      logger: createLogger("silent"),
      taskList: {
        "test.ping": (payload) => {
          ran.push((payload as { n: string }).n);
          return Promise.resolve();
        },
      },
      onStatus: (status) => statuses.push(status),
      onPool: (pool) => pools.push(pool),
    });
    try {
      await fixture.db.sql`select graphile_worker.add_job('test.ping', json_build_object('n', 'before'))`;
      await until(() => ran.includes("before"));

      // What graphile-worker does itself when it cannot complete or fail jobs.
      const first = pools[0];
      assert.ok(first);
      void first.gracefulShutdown("simulated: could not completeJobs");
      await until(() => pools.length === 2 && statuses.at(-1)?.running === true);
      assert.deepEqual(
        statuses.map((s) => s.running),
        [true, false, true],
        "reported down, then running again",
      );
      assert.notEqual(pools[1]?.id, first.id);

      await fixture.db.sql`select graphile_worker.add_job('test.ping', json_build_object('n', 'after'))`;
      await until(() => ran.includes("after"));
    } finally {
      await worker.stop();
    }
    // A stop asked for is not a failure: nothing more is reported, and done resolves.
    await worker.done;
    assert.equal(statuses.at(-1)?.running, true);
  });
});
