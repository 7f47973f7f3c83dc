import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WebhookServiceService } from "@httpqueue/proto";
import { hostileRequest, KINDS, rpcTargets } from "../src/hostile/requests.js";
import { varint } from "../src/hostile/wire.js";
import { createRandom } from "../src/random.js";

describe("hostile requests", () => {
  it("cover every RPC of the generated service definition, each with its request's descriptor", () => {
    const targets = rpcTargets();
    assert.deepEqual(
      targets.map((t) => t.path).sort(),
      Object.values(WebhookServiceService)
        .map((d) => d.path)
        .sort(),
    );
    for (const target of targets) assert.ok(target.input, `${target.name}: its request type is in the descriptor set`);
  });

  it("varints as protobuf writes them: 300 in two bytes, -1 in ten", () => {
    assert.deepEqual([...varint(300)], [0xac, 0x02]);
    assert.equal(varint(-1).length, 10);
    assert.deepEqual([...varint(2n ** 64n - 1n)], [...varint(-1)]);
  });

  it("come in every kind, the same for the same seed", () => {
    const targets = rpcTargets();
    const known = { webhookIds: [], eventIds: [], deliveryIds: [] };
    const run = (seed: number) => {
      const r = createRandom(seed);
      return Array.from({ length: 1500 }, () => {
        const { kind, bytes } = hostileRequest(r.pick(targets), r, known);
        return { kind, length: bytes.length };
      });
    };
    const first = run(7);
    assert.deepEqual(new Set(first.map((q) => q.kind)), new Set(KINDS));
    // Ids aside (random UUIDs), a seed gives the same requests.
    assert.deepEqual(
      first.map((q) => q.kind),
      run(7).map((q) => q.kind),
    );
    for (const { kind, length } of first) {
      if (kind !== "over 4 MiB") assert.ok(length < 4 * 1024 * 1024, `${kind}: ${length} bytes`);
    }
  });
});
