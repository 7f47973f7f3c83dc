import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { WebhookServiceService } from "@httpqueue/proto";
import { startTestServer, type TestServer } from "./helpers/server.js";

// Bytes that are no protobuf message at all: each RPC answers INVALID_ARGUMENT
// naming the request, as for any other bad input. grpc-js answers INTERNAL
// ("Error deserializing request") when the decoder throws, which is what these
// calls got before the decoder was guarded.

const group = (field: number, wireType: 3 | 4) => (field << 3) | wireType;

const UNDECODABLE: Record<string, Buffer> = {
  "a length past the end": Buffer.from([0x0a, 0x05, 0x61]),
  "wire type 7": Buffer.from([0x0f, 0x01]),
  "a group that never ends": Buffer.from([group(1, 3), 0x08, 0x01]),
  "groups nested 200 deep": Buffer.concat([Buffer.alloc(200, group(1, 3)), Buffer.alloc(200, group(1, 4))]),
};

function call(client: Client, path: string, stream: boolean, bytes: Buffer): Promise<ServiceError | undefined> {
  const identity = (b: Buffer) => b;
  const options = { deadline: Date.now() + 10_000 };
  if (stream) {
    return new Promise((resolve) => {
      const s = client.makeServerStreamRequest(path, identity, identity, bytes, new Metadata(), options);
      s.on("data", () => undefined);
      s.on("error", resolve);
      s.on("end", () => {
        resolve(undefined);
      });
    });
  }
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, bytes, new Metadata(), options, (err) => {
      resolve(err ?? undefined);
    });
  });
}

describe("requests that cannot be decoded", () => {
  let server: TestServer;
  let raw: Client;

  before(async () => {
    server = await startTestServer();
    raw = new Client(server.app.address, credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    await server.stop();
  });

  for (const def of Object.values(WebhookServiceService)) {
    const rpc = def.path.slice(def.path.lastIndexOf("/") + 1);
    it(`${rpc}: INVALID_ARGUMENT naming the request, for each kind of undecodable bytes`, async () => {
      for (const [what, bytes] of Object.entries(UNDECODABLE)) {
        const err = await call(raw, def.path, def.responseStream, bytes);
        assert.ok(err, `${what}: refused`);
        assert.equal(err.code, status.INVALID_ARGUMENT, `${what}: ${status[err.code]} ${err.details}`);
        assert.ok(err.details.startsWith(`request: is not a ${rpc} request message (`), `${what}: ${err.details}`);
      }
    });
  }

  it("the server serves as before", async () => {
    const { eventId } = await server.client.pushEvent({ namespace: "undecodable", event: "e", payload: "{}" });
    assert.match(eventId, /^[0-9a-f-]{36}$/);
  });
});
