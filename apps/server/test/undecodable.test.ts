import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { grpcReflectionV1, grpcReflectionV1alpha, WebhookServiceService } from "@httpqueue/proto";
import { service as HealthService } from "grpc-health-check";
import { startTestServer, type TestServer } from "./helpers/server.js";

// Bytes that are no protobuf message at all: each RPC answers INVALID_ARGUMENT
// naming the request, as for any other bad input. grpc-js answers INTERNAL
// ("Error deserializing request") when the decoder throws, which is what these
// calls got before the decoder was guarded. The same for the health and
// reflection services, which share the server (and need no token).

const group = (field: number, wireType: 3 | 4) => (field << 3) | wireType;

/** On field 1, which every request message declares. */
const ON_A_DECLARED_FIELD: Record<string, Buffer> = {
  "a length past the end": Buffer.from([0x0a, 0x05, 0x61]),
  "wire type 7": Buffer.from([0x0f, 0x01]),
  "a group that never ends": Buffer.from([group(1, 3), 0x08, 0x01]),
  "groups nested 200 deep": Buffer.concat([Buffer.alloc(200, group(1, 3)), Buffer.alloc(200, group(1, 4))]),
};

/** On field 1000, which none declares (tag C2 3E, C7 3E, C3 3E for wire types 2, 7, 3). */
const ON_AN_UNKNOWN_FIELD: Record<string, Buffer> = {
  "an unknown field's length past the end": Buffer.from([0xc2, 0x3e, 0x05, 0x61]),
  "an unknown field of wire type 7": Buffer.from([0xc7, 0x3e, 0x01]),
  "an unknown group that never ends": Buffer.from([0xc3, 0x3e, 0x08, 0x01]),
};

interface Method {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

/** The call's error, undefined when it ended with OK. A streaming request sends `bytes` as its one message. */
function call(client: Client, method: Method, bytes: Buffer): Promise<ServiceError | undefined> {
  const { path } = method;
  const identity = (b: Buffer) => b;
  const options = { deadline: Date.now() + 10_000 };
  if (method.requestStream) {
    return new Promise((resolve) => {
      const s = client.makeBidiStreamRequest(path, identity, identity, new Metadata(), options);
      s.on("data", () => undefined);
      s.on("error", resolve);
      s.on("end", () => {
        resolve(undefined);
      });
      s.end(bytes);
    });
  }
  if (method.responseStream) {
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

  const everyKind = { ...ON_A_DECLARED_FIELD, ...ON_AN_UNKNOWN_FIELD };
  const services: [Method[], Record<string, Buffer>][] = [
    [Object.values(WebhookServiceService), everyKind],
    // grpc-health-check's decoder (protobufjs) reads a declared field whatever its wire type and length.
    [Object.values(HealthService), ON_AN_UNKNOWN_FIELD],
    [Object.values(grpcReflectionV1.ServerReflectionService), everyKind],
    [Object.values(grpcReflectionV1alpha.ServerReflectionService), everyKind],
  ];
  for (const [def, kinds] of services.flatMap(([methods, kinds]) => methods.map((m) => [m, kinds] as const))) {
    const rpc = def.path.slice(def.path.lastIndexOf("/") + 1);
    it(`${def.path.slice(1)}: INVALID_ARGUMENT naming the request, for each kind of undecodable bytes`, async () => {
      for (const [what, bytes] of Object.entries(kinds)) {
        const err = await call(raw, def, bytes);
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
