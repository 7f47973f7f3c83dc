import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  busiestSecond,
  duplicates,
  firstReceiptAfter,
  lostEvents,
  outOfOrder,
  quantile,
  shortestSpan,
  storedTwice,
} from "../src/analysis.js";
import type { Answer, Receipt } from "../src/receiver.js";

const receipt = (id: string, seq: number, at: number, answer: Answer = 200, key = "k0", path = "/w"): Receipt => ({
  id,
  seq,
  key,
  at,
  answer,
  path,
});

describe("what the receipts say", () => {
  it("an acknowledged event is lost until a receipt answered 2xx carries it", () => {
    const receipts = [receipt("d1", 1, 10), receipt("d2", 2, 11, 500), receipt("d3", 3, 12, "reset")];
    assert.deepEqual(lostEvents([1, 2, 3], receipts), [2, 3]);
    assert.deepEqual(lostEvents([1, 2], [...receipts, receipt("d2", 2, 20)]), []);
  });

  it("a delivery answered 2xx twice is a duplicate; a kill between the two explains it", () => {
    const receipts = [
      receipt("a", 1, 100),
      receipt("a", 1, 300),
      receipt("b", 2, 100, 500),
      receipt("b", 2, 150),
      receipt("c", 3, 400),
      receipt("c", 3, 450),
      receipt("c", 3, 460),
    ];
    assert.deepEqual(duplicates(receipts), {
      deliveries: 2,
      extraRequests: 3,
      unexplained: 2,
      unexplainedExamples: [
        { id: "a", times: [100, 300] },
        { id: "c", times: [400, 450, 460] },
      ],
    });
    assert.deepEqual(duplicates(receipts, [200]), {
      deliveries: 2,
      extraRequests: 3,
      unexplained: 1,
      unexplainedExamples: [{ id: "c", times: [400, 450, 460] }],
    });
  });

  it("an event received under two webhook-ids for one webhook was stored twice", () => {
    assert.equal(storedTwice([receipt("a", 1, 1), receipt("a", 1, 2), receipt("b", 2, 3)]), 0);
    assert.equal(storedTwice([receipt("a", 1, 1), receipt("b", 1, 2), receipt("c", 1, 3, 200, "k0", "/other")]), 1);
  });

  it("an event arriving after a later one of its key is out of order; retries and other keys are not", () => {
    const inOrder = [
      receipt("a", 0, 1, 500),
      receipt("a", 0, 2),
      receipt("b", 20, 3),
      receipt("c", 1, 4, 200, "k1"),
      receipt("d", 40, 5),
    ];
    assert.equal(outOfOrder(inOrder), 0);
    assert.equal(outOfOrder([...inOrder, receipt("e", 30, 6), receipt("f", 60, 7, 200, "k0", "/w2")]), 1);
  });

  it("the busiest second counts requests within any window shorter than a second", () => {
    assert.equal(busiestSecond([]), 0);
    assert.equal(busiestSecond([0, 999, 1000, 1998, 2500]), 3);
    assert.equal(busiestSecond([5, 1, 3, 2, 4]), 5);
  });

  it("the shortest span of n requests: under a second, more than n - 1 came within a second", () => {
    const every20 = Array.from({ length: 60 }, (_, i) => 20 * i);
    assert.equal(shortestSpan(every20, 51), 1000);
    assert.equal(shortestSpan([15, ...every20.slice(1)], 51), 985);
    assert.equal(shortestSpan([1, 2], 3), Infinity);
  });

  it("the first receipt after a moment, and quantiles by nearest rank", () => {
    const receipts = [receipt("a", 1, 100), receipt("b", 2, 250), receipt("c", 3, 180)];
    assert.equal(firstReceiptAfter(receipts, 150), 30);
    assert.equal(firstReceiptAfter(receipts, 250), undefined);
    assert.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
    assert.equal(quantile([5, 1, 4, 2, 3], 0.99), 5);
    assert.ok(Number.isNaN(quantile([], 0.5)));
  });
});
