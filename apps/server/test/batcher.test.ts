import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createBatcher } from "../src/db/batcher.js";
import { OverloadedError } from "../src/errors.js";

/** A promise and its resolver, to hold a batch open until the test lets it finish. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe("batcher", () => {
  it("runs a lone item at once, and items that arrive while a batch runs together in the next", async () => {
    const batches: number[][] = [];
    const first = gate();
    const batcher = createBatcher<number, number>({
      async run(items) {
        batches.push(items);
        if (batches.length === 1) await first.opened;
        return items.map((n) => n * 10);
      },
      maxBatchSize: 100,
      maxConcurrent: 1,
    });

    const lone = batcher.add(1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(batches, [[1]], "the first item did not wait for company");
    const waiting = [2, 3, 4, 5].map((n) => batcher.add(n));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(batches.length, 1, "no second batch while the first runs (maxConcurrent 1)");
    first.open();
    assert.deepEqual(await Promise.all([lone, ...waiting]), [10, 20, 30, 40, 50]);
    assert.deepEqual(batches, [[1], [2, 3, 4, 5]]);
  });

  it("keeps batches within their size, weight and concurrency limits", async () => {
    let running = 0;
    let mostRunning = 0;
    const batches: string[][] = [];
    const batcher = createBatcher<string, string>({
      async run(items) {
        running++;
        mostRunning = Math.max(mostRunning, running);
        batches.push(items);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
        return items.map((s) => s.toUpperCase());
      },
      maxBatchSize: 3,
      maxConcurrent: 2,
      weight: (s) => s.length,
      maxBatchWeight: 4,
    });
    const items = ["a", "b", "c", "d", "eeeeeeee", "f", "gg", "hh", "i"];
    assert.deepEqual(
      await Promise.all(items.map((s) => batcher.add(s))),
      items.map((s) => s.toUpperCase()),
    );
    assert.equal(mostRunning, 2);
    for (const batch of batches) {
      assert.ok(batch.length <= 3, `batch ${JSON.stringify(batch)} has more than 3 items`);
      const weight = batch.reduce((sum, s) => sum + s.length, 0);
      assert.ok(batch.length === 1 || weight <= 4, `batch ${JSON.stringify(batch)} weighs more than 4`);
    }
    assert.deepEqual(batches.flat().sort(), [...items].sort(), "every item ran exactly once");
  });

  it("never puts two items with the same key in one batch", async () => {
    const batches: string[][] = [];
    const batcher = createBatcher<{ key: string; n: number }, number>({
      async run(items) {
        batches.push(items.map((i) => `${i.key}${i.n}`));
        await new Promise((resolve) => setImmediate(resolve));
        return items.map((i) => i.n);
      },
      maxBatchSize: 10,
      maxConcurrent: 1,
      key: (i) => i.key,
    });
    const adds = [
      { key: "a", n: 1 },
      { key: "b", n: 2 },
      { key: "a", n: 3 },
      { key: "a", n: 4 },
      { key: "c", n: 5 },
    ].map((i) => batcher.add(i));
    assert.deepEqual(await Promise.all(adds), [1, 2, 3, 4, 5]);
    assert.deepEqual(batches, [["a1", "b2", "c5"], ["a3"], ["a4"]]);
  });

  it("never runs two items with the same key at the same time, even in batches running side by side", async () => {
    const running = new Set<string>();
    const order: string[] = [];
    const batcher = createBatcher<{ key: string; n: number }, number>({
      async run(items) {
        for (const i of items) {
          assert.ok(!running.has(i.key), `${i.key} is already running`);
          running.add(i.key);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
        for (const i of items) {
          running.delete(i.key);
          order.push(`${i.key}${i.n}`);
        }
        return items.map((i) => i.n);
      },
      maxBatchSize: 1,
      maxConcurrent: 4,
      key: (i) => i.key,
    });
    const items = [
      { key: "a", n: 1 },
      { key: "a", n: 2 },
      { key: "b", n: 3 },
      { key: "a", n: 4 },
    ];
    assert.deepEqual(await Promise.all(items.map((i) => batcher.add(i))), [1, 2, 3, 4]);
    assert.deepEqual(
      order.filter((o) => o.startsWith("a")),
      ["a1", "a2", "a4"],
      "items of one key run in the order they came",
    );
  });

  it("when a batch fails, runs its items alone: only the bad one fails", async () => {
    const batches: number[][] = [];
    const batcher = createBatcher<number, number>({
      async run(items) {
        batches.push(items);
        await Promise.resolve();
        if (items.includes(3)) throw new Error("3 is bad");
        return items;
      },
      maxBatchSize: 10,
      maxConcurrent: 1,
    });
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => batcher.add(n)));
    assert.deepEqual(
      results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message)),
      [1, 2, "3 is bad", 4],
    );
    assert.deepEqual(batches[0], [1, 2, 3, 4]);
    assert.deepEqual(batches.slice(1).sort(), [[1], [2], [3], [4]]);
  });

  it("when the database is unreachable, fails every item of the batch without running them again", async () => {
    let runs = 0;
    const batcher = createBatcher<number, number>({
      async run() {
        runs++;
        await Promise.resolve();
        throw Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" });
      },
      maxBatchSize: 10,
      maxConcurrent: 1,
    });
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.add(n)));
    assert.deepEqual(
      results.map((r) => r.status),
      ["rejected", "rejected", "rejected"],
    );
    assert.equal(runs, 1);
  });

  it("fails a batch whose results do not match its items, without running it again", async () => {
    let runs = 0;
    const batcher = createBatcher<number, number>({
      async run() {
        runs++;
        await Promise.resolve();
        return [1];
      },
      maxBatchSize: 10,
      maxConcurrent: 1,
    });
    const results = await Promise.allSettled([1, 2].map((n) => batcher.add(n)));
    assert.deepEqual(
      results.map((r) => r.status),
      ["rejected", "rejected"],
    );
    assert.equal(runs, 1, "the statement ran: its items must not be applied twice");
  });

  it("keeps working after a failed batch", async () => {
    let fail = true;
    const batcher = createBatcher<number, number>({
      async run(items) {
        await Promise.resolve();
        if (fail) throw Object.assign(new Error("down"), { code: "ECONNRESET" });
        return items;
      },
      maxBatchSize: 10,
      maxConcurrent: 1,
    });
    await assert.rejects(batcher.add(1), /down/);
    fail = false;
    assert.deepEqual(await Promise.all([2, 3].map((n) => batcher.add(n))), [2, 3]);
  });

  it("refuses items past maxQueuedWeight at once, and serves the others", async () => {
    const first = gate();
    const batcher = createBatcher<string, string>({
      async run(items) {
        await first.opened;
        return items.map((s) => s.toUpperCase());
      },
      maxBatchSize: 100,
      maxConcurrent: 1,
      weight: (s) => s.length,
      maxQueuedWeight: 10,
    });
    const running = batcher.add("aaaa"); // taken into the first batch: no longer queued
    await new Promise((resolve) => setImmediate(resolve));
    const queued = [batcher.add("bbbbbb"), batcher.add("cccc")]; // 10 queued
    await assert.rejects(batcher.add("d"), (err: unknown) => err instanceof OverloadedError);
    first.open();
    assert.deepEqual(await Promise.all([running, ...queued]), ["AAAA", "BBBBBB", "CCCC"]);
    assert.equal(await batcher.add("eeeeeeeeee"), "EEEEEEEEEE", "room again once the queue drained");
  });
});
