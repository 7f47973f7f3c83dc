import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { now } from "../src/clock.js";
import { payloadMaker } from "../src/load.js";
import { startBenchReceiver, type BenchReceiver } from "../src/receiver.js";

describe("receiver", () => {
  let receiver: BenchReceiver;
  before(async () => {
    receiver = await startBenchReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  const post = async (body: string) => {
    const res = await request(`${receiver.url}/hooks/x`, { method: "POST", body });
    await res.body.dump();
    return res.statusCode;
  };

  it("answers 200 and records each request's arrival time and sequence number", async () => {
    const payload = payloadMaker(256);
    assert.equal(Buffer.byteLength(payload(1234567)), 256);
    const sentFrom = now();
    assert.deepEqual(
      await Promise.all([payload(7), payload(1234567), "not json", "{}"].map(post)),
      [200, 200, 200, 200],
    );
    const sentTo = now();
    assert.equal(await receiver.count(), 4);
    const { times, seqs } = await receiver.take();
    assert.deepEqual(
      [...seqs].sort((a, b) => a - b),
      [-1, -1, 7, 1234567],
    );
    for (const t of times) assert.ok(t >= sentFrom - 5 && t <= sentTo + 5, "arrival times are on the sender's clock");
  });

  it("hands out what arrived after a position, and starts over on reset", async () => {
    await receiver.reset();
    assert.equal(await receiver.count(), 0);
    for (let i = 0; i < 3; i++) await post(`{"seq":${i},"data":""}`);
    assert.deepEqual([...(await receiver.take(1)).seqs], [1, 2]);
    await receiver.reset();
    assert.equal((await receiver.take()).times.length, 0);
  });
});
